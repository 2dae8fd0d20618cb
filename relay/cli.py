"""kubensage-relay: receive agent reports and serve them to Prometheus."""

from __future__ import annotations

import asyncio
from typing import Any

import click
from loguru import logger

from kubensage_api.telemetry import telemetry_pb2 as tm
from kubensage_common.addresses import split_host_port
from kubensage_common.cliconfig import config_option, logging_options, option
from kubensage_common.logsetup import configure_logging
from kubensage_common.tls import require_secure_or_explicit
from kubensage_common.version import version_string
from relay.agentsettings import parse_check_override
from relay.app import RelayConfig, serve
from relay.expose.webconfig import WebConfig, load_web_config
from relay.ingest.limits import ReportLimits
from relay.series.profiles import PROFILES, parse_profiles


def _address(_ctx: click.Context, _param: click.Parameter, value: str) -> str:
    split_host_port(value)
    return value


def _profiles(_ctx: click.Context, _param: click.Parameter, value: str) -> str:
    try:
        parse_profiles(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from exc
    return value


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(message=version_string("kubensage-relay"))
def cli() -> None:
    """Receive agent reports, keep the latest per node, expose them on /metrics."""


def _check_overrides(
    _ctx: click.Context, _param: click.Parameter, values: tuple[str, ...]
) -> tuple[tm.CheckOverride, ...]:
    try:
        return tuple(parse_check_override(value) for value in values)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from exc


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
    default="native",
    callback=_profiles,
    help=f"Comma-separated metric profiles to serve ({', '.join(PROFILES)}); e.g. native,cadvisor.",
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
    "--check-override",
    multiple=True,
    callback=_check_overrides,
    help="Pushed to every agent: NAME:enabled=true|false,interval=SECONDS for the node "
    "check NAME (repeatable). Switches checks and sets intervals, never what runs.",
)
@option(
    "--max-message-bytes",
    type=click.IntRange(min=1024),
    default=16 * 1024 * 1024,
    help="Largest report accepted; larger ones end the stream with RESOURCE_EXHAUSTED.",
)
@option(
    "--max-pods-per-report",
    type=click.IntRange(min=1),
    default=1000,
    help="Pods beyond this in one report are cut and counted.",
)
@option(
    "--max-label-value-bytes",
    type=click.IntRange(min=16),
    default=1024,
    help="Longer label values are cut and counted.",
)
@option("--tls-cert-file", default=None, help="PEM certificate for the gRPC ingest port.")
@option("--tls-key-file", default=None, help="PEM private key for --tls-cert-file.")
@option(
    "--tls-client-ca-file",
    default=None,
    help="Require agent client certificates signed by this CA (mutual TLS).",
)
@option(
    "--token-file",
    default=None,
    help="Accepted bearer tokens, one per line; re-read when the file changes.",
)
@option(
    "--insecure",
    is_flag=True,
    default=False,
    help="Allow plaintext gRPC on a non-loopback address.",
)
@option(
    "--web-config-file",
    default=None,
    help="TLS and basic auth for /metrics, in Prometheus exporter-toolkit format.",
)
@option(
    "--kube-enrichment/--no-kube-enrichment",
    default=True,
    help="Add workload, requests/limits, pod labels and node zones from the Kubernetes "
    "API (in-cluster service account, else --kubeconfig); off by itself without either.",
)
@option(
    "--kubeconfig",
    default=None,
    help="kubeconfig for running outside the cluster (default: $KUBECONFIG, ~/.kube/config).",
)
@option(
    "--pod-labels",
    default="",
    help="Pod label keys to expose on kubensage_pod_labels (comma-separated, or *).",
)
@option(
    "--cluster-name",
    default="",
    help="Value of the cluster label on kubensage_node_info (default: from the "
    "kubeconfig context or well-known node labels).",
)
@option(
    "--kube-sync-timeout",
    type=click.FloatRange(min=0),
    default=30.0,
    help="Seconds /readyz waits for the first Kubernetes sync before reporting ready.",
)
@option(
    "--kube-resync",
    type=click.FloatRange(min=10),
    default=3600.0,
    help="Seconds between full relists of each Kubernetes cache.",
)
@logging_options
@config_option()
def serve_command(**options: Any) -> None:
    """Run the relay until SIGTERM or SIGINT."""
    configure_logging(options["log_level"], options["log_format"], options["log_file"])
    if bool(options["tls_cert_file"]) != bool(options["tls_key_file"]):
        raise click.UsageError("--tls-cert-file and --tls-key-file go together")
    if require_secure_or_explicit(
        options["listen_address"],
        bool(options["tls_cert_file"]),
        options["insecure"],
        "--listen-address",
    ):
        logger.warning("gRPC ingest on {} is plaintext (--insecure)", options["listen_address"])
    try:
        web = load_web_config(options["web_config_file"]) if options["web_config_file"] else None
    except (OSError, ValueError) as exc:
        raise click.UsageError(f"--web-config-file: {exc}") from exc
    config = RelayConfig(
        listen_address=options["listen_address"],
        metrics_address=options["metrics_address"],
        metric_profile=options["metric_profile"],
        node_grace_seconds=options["node_grace_period"],
        agent_interval_seconds=options["agent_interval"],
        max_message_bytes=options["max_message_bytes"],
        limits=ReportLimits(
            max_pods=options["max_pods_per_report"],
            max_label_value_bytes=options["max_label_value_bytes"],
        ),
        tls_cert_file=options["tls_cert_file"],
        tls_key_file=options["tls_key_file"],
        tls_client_ca_file=options["tls_client_ca_file"],
        token_file=options["token_file"],
        web=web or WebConfig(),
        kube_enrichment=options["kube_enrichment"],
        kubeconfig=options["kubeconfig"],
        pod_labels=options["pod_labels"],
        cluster_name=options["cluster_name"],
        kube_sync_timeout_seconds=options["kube_sync_timeout"],
        kube_resync_seconds=options["kube_resync"],
        check_overrides=options["check_override"],
    )
    asyncio.run(serve(config))


def main() -> None:
    cli()
