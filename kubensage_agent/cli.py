"""kubensage-agent: detect the runtime, collect one report, or run the push loop."""

from __future__ import annotations

import asyncio
import logging
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import click

from kubensage_agent.checks.manifest import CheckDefaults
from kubensage_agent.checks.sandbox import Limits, PidsCgroups
from kubensage_agent.checks.scheduler import CheckScheduler
from kubensage_agent.collectors.errors import CollectorErrors
from kubensage_agent.collectors.node import NodeCollector, default_node_name
from kubensage_agent.collectors.node.flags import settings_from_options
from kubensage_agent.cri.discovery import DiscoveryError, discover
from kubensage_agent.hostfs import HostPaths
from kubensage_agent.options import host_options, stats_policy
from kubensage_agent.push.runner import AgentRunner, RunConfig
from kubensage_agent.report import ReportBuilder, RuntimeLink
from kubensage_agent.state.identity import load_or_create_agent_id
from kubensage_agent.wire.tls import ClientTls
from kubensage_common.addresses import split_host_port
from kubensage_common.cliconfig import option
from kubensage_common.logsetup import configure_logging
from kubensage_common.plaintext import require_secure_or_explicit
from kubensage_common.protocol import DEFAULT_MAX_MESSAGE_BYTES
from kubensage_common.version import VERSION, version_string

logger = logging.getLogger(__name__)


def _setup(options: dict[str, Any]) -> tuple[HostPaths, CollectorErrors]:
    configure_logging(options["log_level"], options["log_format"], options["log_file"])
    return HostPaths(Path(options["host_root"])), CollectorErrors()


def _relay_tls(options: dict[str, Any]) -> ClientTls | None:
    files = (options["tls_ca_file"], options["tls_cert_file"], options["tls_key_file"])
    if not options["tls"] and not any(files):
        return None
    if bool(options["tls_cert_file"]) != bool(options["tls_key_file"]):
        raise click.UsageError("--tls-cert-file and --tls-key-file go together")
    tls = ClientTls(*files, server_name=options["tls_server_name"])
    try:
        tls.context()  # unreadable or mismatched files are a usage error now, not a retry loop
    except OSError as exc:
        raise click.UsageError(f"cannot use the TLS files: {exc}") from exc
    return tls


def build_reporter(
    options: dict[str, Any], agent_id: str, checks: CheckScheduler | None = None
) -> ReportBuilder:
    paths, errors = _setup(options)
    try:
        settings = settings_from_options(options)
    except ValueError as exc:
        raise click.UsageError(f"node collectors: {exc}") from exc
    node = NodeCollector(paths, options["node_name"] or default_node_name(), errors, settings)
    runtime = RuntimeLink(
        paths, options["cri_socket"], options["cri_timeout"], errors, stats_policy(options)
    )
    return ReportBuilder(
        agent_id=agent_id,
        node=node,
        runtime=runtime,
        errors=errors,
        cri_timeout=options["cri_timeout"],
        checks=checks,
    )


def build_checks(options: dict[str, Any]) -> CheckScheduler | None:
    if not options["checks_dir"]:
        return None
    return CheckScheduler(
        Path(options["checks_dir"]),
        defaults=CheckDefaults(options["checks_interval"], options["checks_timeout"]),
        max_concurrent=options["checks_max_concurrent"],
        cgroups=PidsCgroups.detect(),
        limits=Limits(proc=HostPaths(Path(options["host_root"])).proc()),
    )


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(VERSION, message=version_string("kubensage-agent"))
def cli() -> None:
    """Node and container telemetry from /proc, /sys and the CRI runtime."""


@cli.command()
@host_options
def detect(**options: Any) -> None:
    """Show which CRI runtime socket answers, with its name and versions."""
    paths, _ = _setup(options)
    try:
        found = discover(paths, options["cri_socket"], options["cri_timeout"])
    except DiscoveryError as exc:
        click.echo(str(exc), err=True)
        sys.exit(1)
    version = found.version
    click.echo(f"endpoint: {found.endpoint}")
    click.echo(f"runtime: {version.runtime_name} {version.runtime_version}")
    click.echo(f"cri_api_version: {version.runtime_api_version}")


@cli.command()
@host_options
@option("--format", "output_format", type=click.Choice(["json", "text"]), default="json")
@option(
    "--sample-interval",
    type=click.FloatRange(min=0),
    default=1.0,
    help="Seconds between the two samples that fill the CPU rates; 0 takes one sample "
    "(no rates, and no writable layer unless --cri-stats-interval is 0).",
)
def collect(output_format: str, sample_interval: float, **options: Any) -> None:
    """Collect one report and print it, then exit."""
    reporter = build_reporter(options, agent_id=str(uuid.uuid4()))
    try:
        report = reporter.build(sequence=1)
        if sample_interval > 0:
            time.sleep(sample_interval)
            report = reporter.build(sequence=2)
    finally:
        if reporter.runtime is not None:
            reporter.runtime.close()
    # the formatters load only here: `run` never needs them, and each costs memory
    if output_format == "json":
        from google.protobuf import json_format  # noqa: PLC0415

        click.echo(json_format.MessageToJson(report, preserving_proto_field_name=True))
    else:
        from kubensage_agent.textformat import render_text  # noqa: PLC0415

        click.echo(render_text(report))


@cli.command()
@host_options
@option("--relay-address", required=True, help="HOST:PORT of a kubensage-relay.")
@option(
    "--interval",
    type=click.FloatRange(min=0.2),
    default=10.0,
    help="Seconds between collections; a relay may change it.",
)
@option(
    "--queue-size",
    type=click.IntRange(min=1),
    default=360,
    help="Unacknowledged reports kept in memory; the oldest is dropped when full.",
)
@option(
    "--flush-timeout",
    type=click.FloatRange(min=0),
    default=5.0,
    help=(
        "Seconds the whole stop on SIGTERM may take: the cycle under way, then the "
        "acknowledgement of queued reports (closing the stream takes up to 2 s more)."
    ),
)
@option(
    "--max-message-bytes",
    type=click.IntRange(min=1024),
    default=DEFAULT_MAX_MESSAGE_BYTES,
    help="Reports larger than this are dropped and counted, never sent (the relay's "
    "default limit).",
)
@option(
    "--health-address",
    default="",
    help="HOST:PORT for /livez and /readyz; empty turns the probes off.",
)
@option(
    "--state-dir",
    type=click.Path(file_okay=False),
    default="/var/lib/kubensage",
    help="Where the agent id, sequence numbers and spool are kept.",
)
@option(
    "--agent-id", default=None, help="Use this id instead of the one persisted in the state dir."
)
@option(
    "--spool/--no-spool",
    default=False,
    help="Keep unacknowledged reports on disk so restarts lose none.",
)
@option(
    "--spool-max-bytes",
    type=click.IntRange(min=1024),
    default=64 * 1024 * 1024,
    help="Disk the spool may use; the oldest reports are evicted beyond it.",
)
@option(
    "--spool-max-age",
    type=click.FloatRange(min=1),
    default=3600.0,
    help="Seconds a spooled report is kept before it is evicted as too old.",
)
@option(
    "--tls/--no-tls",
    default=False,
    help="TLS to the relay (implied by any --tls-*-file); system roots without a CA file.",
)
@option("--tls-ca-file", default=None, help="CA that signed the relay's certificate.")
@option("--tls-cert-file", default=None, help="Client certificate for mutual TLS.")
@option("--tls-key-file", default=None, help="Private key for --tls-cert-file.")
@option(
    "--tls-server-name",
    default=None,
    help="Name to verify in the relay's certificate when it differs from the address.",
)
@option(
    "--token-file",
    default=None,
    help="Bearer token for the relay; read at every connect, so rotation needs no restart.",
)
@option(
    "--insecure",
    is_flag=True,
    default=False,
    help="Allow plaintext to a relay that is not on loopback.",
)
@option(
    "--status-remote/--no-status-remote",
    default=False,
    help="Answer /status on the health port to non-loopback peers too (it shows pod names, "
    "images and check output).",
)
@option(
    "--checks-dir",
    type=click.Path(file_okay=False),
    default="/etc/kubensage/checks.d",
    help="Check scripts (root-owned, not group/other-writable) with optional <name>.yaml "
    "manifests; re-read when it changes. Empty turns checks off.",
)
@option(
    "--checks-max-concurrent",
    type=click.IntRange(min=1, max=64),
    default=4,
    help="Checks running at once; the others wait their turn.",
)
@option(
    "--checks-interval",
    type=click.FloatRange(min=1, max=86_400),
    default=60.0,
    help="Seconds between runs of a check whose manifest sets no interval.",
)
@option(
    "--checks-timeout",
    type=click.FloatRange(min=0.1, max=3_600),
    default=10.0,
    help="Seconds before a check whose manifest sets no timeout is killed.",
)
def run(**options: Any) -> None:
    """Collect every interval and push each report to the relay, until SIGTERM."""
    split_host_port(options["relay_address"])
    if options["health_address"]:
        split_host_port(options["health_address"])
    configure_logging(options["log_level"], options["log_format"], options["log_file"])
    tls = _relay_tls(options)
    if require_secure_or_explicit(
        options["relay_address"], tls is not None, options["insecure"], "--relay-address"
    ):
        logger.warning("reports to %s travel in plaintext (--insecure)", options["relay_address"])
    state_dir: Path | None = Path(options["state_dir"])
    try:
        agent_id = options["agent_id"] or load_or_create_agent_id(
            Path(options["state_dir"]) / "agent-id"
        )
    except OSError as exc:
        if options["spool"]:
            raise click.UsageError(f"--spool needs a writable --state-dir: {exc}") from exc
        logger.warning(
            "state dir unusable (%s); this run gets a new agent id and sequence "
            "numbers are not kept across restarts",
            exc,
        )
        agent_id, state_dir = str(uuid.uuid4()), None
    reporter = build_reporter(options, agent_id=agent_id, checks=build_checks(options))
    config = RunConfig(
        relay_address=options["relay_address"],
        interval_seconds=options["interval"],
        queue_size=options["queue_size"],
        flush_timeout_seconds=options["flush_timeout"],
        max_message_bytes=options["max_message_bytes"],
        health_address=options["health_address"],
        state_dir=state_dir,
        spool_max_bytes=options["spool_max_bytes"] if options["spool"] else 0,
        spool_max_age_seconds=options["spool_max_age"],
        tls=tls,
        token_file=Path(options["token_file"]) if options["token_file"] else None,
        status_remote=options["status_remote"],
    )
    sys.exit(asyncio.run(AgentRunner(reporter, config).run()))


def main() -> None:
    cli(auto_envvar_prefix=None)
