"""kubensage-relay: receive agent reports and serve them to Prometheus."""

from __future__ import annotations

import asyncio
from typing import Any

import click

from kubensage_common.addresses import split_host_port
from kubensage_common.cliconfig import config_option, logging_options, option
from kubensage_common.logsetup import configure_logging
from kubensage_common.version import version_string
from relay.app import RelayConfig, serve
from relay.expose.collector import PROFILES


def _address(_ctx: click.Context, _param: click.Parameter, value: str) -> str:
    split_host_port(value)
    return value


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(message=version_string("kubensage-relay"))
def cli() -> None:
    """Receive agent reports, keep the latest per node, expose them on /metrics."""


@cli.command("serve")
@option(
    "--listen-address",
    default="0.0.0.0:9190",
    callback=_address,
    help="gRPC address agents stream reports to.",
)
@option(
    "--metrics-address",
    default="0.0.0.0:9191",
    callback=_address,
    help="HTTP address of /metrics, /healthz and /readyz.",
)
@option(
    "--metric-profile",
    type=click.Choice(PROFILES),
    default="native",
    help="native kubensage_* names, cAdvisor names, or both.",
)
@option(
    "--node-grace-period",
    type=click.FloatRange(min=0),
    default=30.0,
    help="Seconds a node stays after its stream closed or it fell silent for 3 intervals.",
)
@option(
    "--agent-interval",
    type=click.FloatRange(min=0),
    default=0.0,
    help="Collection interval pushed to every agent; 0 leaves the agents' own.",
)
@option(
    "--max-message-bytes",
    type=click.IntRange(min=1024),
    default=16 * 1024 * 1024,
    help="Largest report accepted.",
)
@logging_options
@config_option()
def serve_command(**options: Any) -> None:
    """Run the relay until SIGTERM or SIGINT."""
    configure_logging(options["log_level"], options["log_format"], options["log_file"])
    config = RelayConfig(
        listen_address=options["listen_address"],
        metrics_address=options["metrics_address"],
        metric_profile=options["metric_profile"],
        node_grace_seconds=options["node_grace_period"],
        agent_interval_seconds=options["agent_interval"],
        max_message_bytes=options["max_message_bytes"],
    )
    asyncio.run(serve(config))


def main() -> None:
    cli()
