"""kubensage-relay: receive agent reports and serve them to Prometheus."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from kubensage_api.telemetry import telemetry_pb2 as tm
from kubensage_common.addresses import split_host_port
from kubensage_common.cliconfig import config_option, logging_options, option
from kubensage_common.logsetup import configure_logging
from kubensage_common.plaintext import require_secure_or_explicit
from kubensage_common.protocol import DEFAULT_MAX_MESSAGE_BYTES
from kubensage_common.version import version_string
from relay.agentsettings import parse_check_override
from relay.app import RelayConfig, build_authenticators, serve
from relay.export.exporter import ExportConfig
from relay.export.receiver import Receiver, parse_external_labels
from relay.export.sender import RetryPolicy
from relay.expose.webconfig import WebConfig, load_web_config
from relay.ingest.auth_tokenreview import DEFAULT_AUDIENCE, DEFAULT_SERVICE_ACCOUNTS
from relay.ingest.decode import DEFAULT_MAX_COMPRESSION_RATIO
from relay.ingest.limits import ReportLimits
from relay.ingest.service import DEFAULT_RELOAD_SECONDS
from relay.series.profiles import PROFILES, parse_profiles
from relay.state.store import DEFAULT_MAX_CLOCK_SKEW_SECONDS, DEFAULT_MAX_REPORT_AGE_SECONDS

logger = logging.getLogger(__name__)

LIMITS = ReportLimits()
# --flag -> ReportLimits field, each with its default from ReportLimits (stated once)
LIMIT_FLAGS = (
    ("--max-pods-per-report", "max_pods", "Pods beyond this in one report are cut and counted."),
    (
        "--max-containers-per-pod",
        "max_containers_per_pod",
        "Containers beyond this in a pod are cut.",
    ),
    (
        "--max-containers-per-report",
        "max_containers",
        "Containers beyond this in a report are cut.",
    ),
    ("--max-labels", "max_labels", "Labels beyond this on a pod or container are cut."),
    ("--max-interfaces", "max_interfaces", "Network interfaces beyond this (node, pod) are cut."),
    ("--max-filesystems", "max_filesystems", "Node filesystems beyond this are cut."),
    ("--max-disks", "max_disks", "Node disks beyond this are cut."),
    ("--max-cpus", "max_cpus", "Per-CPU entries beyond this are cut."),
    ("--max-label-value-bytes", "max_label_value_bytes", "Longer strings are cut and counted."),
)


def _key(flag: str) -> str:
    return flag.removeprefix("--").replace("-", "_")


def limit_options(command: Callable[..., Any]) -> Callable[..., Any]:
    for flag, attribute, text in reversed(LIMIT_FLAGS):
        command = option(
            flag,
            type=click.IntRange(min=1),
            default=getattr(LIMITS, attribute),
            help=text,
        )(command)
    return command


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
    help="Seconds a node stays after its stream was lost or it fell silent for 3 intervals "
    "(a stream the agent closed cleanly drops the node at once).",
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
    default=DEFAULT_MAX_MESSAGE_BYTES,
    help="Largest agent message, decompressed; larger ones end the stream.",
)
@option(
    "--max-compression-ratio",
    type=click.IntRange(min=2),
    default=DEFAULT_MAX_COMPRESSION_RATIO,
    help="A gzip message may inflate at most this many times its size on the wire.",
)
@limit_options
@option(
    "--max-clock-skew",
    type=click.FloatRange(min=0),
    default=DEFAULT_MAX_CLOCK_SKEW_SECONDS,
    help="Seconds a report's collection time may lie ahead of the relay's clock.",
)
@option(
    "--max-report-age",
    type=click.FloatRange(min=60),
    default=DEFAULT_MAX_REPORT_AGE_SECONDS,
    help="Older reports are refused; newer but stale ones are kept as history, not current.",
)
@option("--tls-cert-file", default=None, help="PEM certificate for the gRPC ingest port.")
@option("--tls-key-file", default=None, help="PEM private key for --tls-cert-file.")
@option(
    "--tls-client-ca-file",
    default=None,
    help="Require agent client certificates signed by this CA (mutual TLS); the "
    "certificate's DNS SAN or CN must be the node name.",
)
@option(
    "--tls-client-crl-file",
    default=None,
    help="PEM CRL of revoked agent certificates; streams using one are ended.",
)
@option(
    "--token-file",
    default=None,
    help="Accepted bearer tokens, one per line, each optionally followed by the node "
    "names or glob patterns it may report for; re-read when the file changes.",
)
@option(
    "--token-review/--no-token-review",
    default=False,
    help="Check agents' ServiceAccount tokens with the Kubernetes TokenReview API and "
    "accept reports only for the node of the token's pod.",
)
@option(
    "--token-review-audience",
    default=DEFAULT_AUDIENCE,
    help="Audience the agents' projected tokens are issued for.",
)
@option(
    "--token-review-service-account",
    default=",".join(DEFAULT_SERVICE_ACCOUNTS),
    help="Agent service accounts, namespace:name, comma-separated.",
)
@option(
    "--token-review-timeout",
    type=click.FloatRange(min=0.1),
    default=5.0,
    help="Deadline of each TokenReview and pod lookup, in seconds.",
)
@option(
    "--auth-reload-interval",
    type=click.FloatRange(min=1),
    default=DEFAULT_RELOAD_SECONDS,
    help="Seconds between checks of open streams' credentials (revocation).",
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
@option(
    "--expose-node-series/--no-expose-node-series",
    default=True,
    help="Serve the nodes' series on /metrics; off leaves /metrics to the relay's own "
    "health, for a relay that only remote-writes.",
)
@option(
    "--max-connection-age",
    type=click.FloatRange(min=0),
    default=300.0,
    help="Seconds (+-10% jitter) after which an agent stream ends cleanly and the agent "
    "reconnects, so agents spread over replicas added by a scale-out; 0 never.",
)
@option(
    "--max-connection-age-grace",
    type=click.FloatRange(min=0),
    default=60.0,
    help="Seconds a connection past its age (plus the jitter) may keep a silent stream "
    "before the transport cuts it.",
)
@option(
    "--remote-write-url",
    multiple=True,
    help="Prometheus remote-write receiver (Prometheus, Mimir, Thanos Receive, Cortex, "
    "VictoriaMetrics); repeat for several, each with its own queue.",
)
@option(
    "--external-label",
    multiple=True,
    help="NAME=VALUE added to every remote-written series that has no such label "
    "(e.g. cluster=prod); repeatable.",
)
@option(
    "--remote-write-queue-dir",
    default=None,
    help="Keep the remote-write queues on disk here (survives restarts and SIGKILL); "
    "default: in memory.",
)
@option(
    "--remote-write-queue-max-bytes",
    type=click.IntRange(min=0),
    default=0,
    help="Bound of each receiver's queue in compressed bytes; when reached, reports are "
    "not acknowledged until there is room. 0: 256 MiB in memory, 4 GiB on disk.",
)
@option(
    "--remote-write-queue-max-age",
    type=click.FloatRange(min=1),
    default=86400.0,
    help="Seconds a block may wait in a queue; older ones are dropped and counted.",
)
@option(
    "--remote-write-shards",
    type=click.IntRange(min=1, max=64),
    default=4,
    help="Parallel senders (one connection each) per receiver.",
)
@option(
    "--remote-write-max-samples-per-send",
    type=click.IntRange(min=1),
    default=10_000,
    help="Largest number of samples in one request.",
)
@option(
    "--remote-write-timeout",
    type=click.FloatRange(min=0.1),
    default=30.0,
    help="Seconds one request (connect, send, answer) may take.",
)
@option(
    "--remote-write-max-backoff",
    type=click.FloatRange(min=0.01),
    default=5.0,
    help="Longest wait between retries of a failed request (a Retry-After answer overrides).",
)
@option(
    "--remote-write-bearer-token-file",
    multiple=True,
    help="Bearer token file for the receivers: once for all, or once per URL in order.",
)
@option(
    "--remote-write-basic-auth-username",
    multiple=True,
    help="Basic auth user for the receivers: once for all, or once per URL.",
)
@option(
    "--remote-write-basic-auth-password-file",
    multiple=True,
    help="File holding the basic auth password: once for all, or once per URL.",
)
@option(
    "--remote-write-tls-ca-file",
    multiple=True,
    help="CA bundle verifying https receivers (default: system roots): once or per URL.",
)
@option(
    "--remote-write-tls-cert-file",
    multiple=True,
    help="Client certificate for mutual TLS with the receivers: once or per URL.",
)
@option(
    "--remote-write-tls-key-file",
    multiple=True,
    help="Key of --remote-write-tls-cert-file: once or per URL.",
)
@option(
    "--remote-write-tls-server-name",
    multiple=True,
    help="Name the receiver's certificate must carry, when it differs from the URL's host.",
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
        logger.warning("gRPC ingest on %s is plaintext (--insecure)", options["listen_address"])
    try:
        web = load_web_config(options["web_config_file"]) if options["web_config_file"] else None
    except (OSError, ValueError) as exc:
        raise click.UsageError(f"--web-config-file: {exc}") from exc
    try:
        export = export_config(options)
    except ValueError as exc:
        raise click.UsageError(str(exc)) from exc
    if export is None and not options["expose_node_series"]:
        raise click.UsageError("--no-expose-node-series needs --remote-write-url")
    config = RelayConfig(
        listen_address=options["listen_address"],
        metrics_address=options["metrics_address"],
        metric_profile=options["metric_profile"],
        node_grace_seconds=options["node_grace_period"],
        agent_interval_seconds=options["agent_interval"],
        max_message_bytes=options["max_message_bytes"],
        max_compression_ratio=options["max_compression_ratio"],
        limits=ReportLimits(
            **{attribute: options[_key(flag)] for flag, attribute, _ in LIMIT_FLAGS}
        ),
        max_clock_skew_seconds=options["max_clock_skew"],
        max_report_age_seconds=options["max_report_age"],
        tls_cert_file=options["tls_cert_file"],
        tls_key_file=options["tls_key_file"],
        tls_client_ca_file=options["tls_client_ca_file"],
        tls_client_crl_file=options["tls_client_crl_file"],
        token_file=options["token_file"],
        token_review=options["token_review"],
        token_review_audience=options["token_review_audience"],
        token_review_service_accounts=tuple(
            a.strip() for a in options["token_review_service_account"].split(",") if a.strip()
        ),
        token_review_timeout_seconds=options["token_review_timeout"],
        auth_reload_seconds=options["auth_reload_interval"],
        web=web or WebConfig(),
        kube_enrichment=options["kube_enrichment"],
        kubeconfig=options["kubeconfig"],
        pod_labels=options["pod_labels"],
        cluster_name=options["cluster_name"],
        kube_sync_timeout_seconds=options["kube_sync_timeout"],
        kube_resync_seconds=options["kube_resync"],
        check_overrides=options["check_override"],
        expose_node_series=options["expose_node_series"],
        export=export,
        max_connection_age_seconds=options["max_connection_age"],
        max_connection_age_grace_seconds=options["max_connection_age_grace"],
    )
    if config.tls_client_ca_file and not config.tls_cert_file:
        raise click.UsageError("--tls-client-ca-file needs --tls-cert-file and --tls-key-file")
    try:
        auth = build_authenticators(config)
    except (OSError, ValueError) as exc:
        raise click.UsageError(str(exc)) from exc
    asyncio.run(serve(config, auth))


RECEIVER_FLAGS = (
    "bearer_token_file",
    "basic_auth_username",
    "basic_auth_password_file",
    "tls_ca_file",
    "tls_cert_file",
    "tls_key_file",
    "tls_server_name",
)


def _per_url(values: tuple[str, ...], urls: int, flag: str) -> list[str | None]:
    """A receiver flag given once applies to every URL; else once per URL, in order."""
    if not values:
        return [None] * urls
    if len(values) == 1:
        return [values[0]] * urls
    if len(values) != urls:
        name = "--remote-write-" + flag.replace("_", "-")
        raise ValueError(
            f"{name} given {len(values)} times for {urls} URLs: give it once or per URL"
        )
    return list(values)


def export_config(options: dict[str, Any]) -> ExportConfig | None:
    urls: tuple[str, ...] = options["remote_write_url"]
    if not urls:
        given = [flag for flag in RECEIVER_FLAGS if options[f"remote_write_{flag}"]]
        if given or options["external_label"] or options["remote_write_queue_dir"]:
            raise ValueError("remote-write options given without --remote-write-url")
        return None
    per_url = {
        flag: _per_url(options[f"remote_write_{flag}"], len(urls), flag) for flag in RECEIVER_FLAGS
    }
    receivers = tuple(
        Receiver(
            url,
            timeout_seconds=options["remote_write_timeout"],
            **{flag: values[index] for flag, values in per_url.items()},
        )
        for index, url in enumerate(urls)
    )
    queue_dir = options["remote_write_queue_dir"]
    config = ExportConfig(
        receivers=receivers,
        external_labels=parse_external_labels(options["external_label"]),
        queue_dir=Path(queue_dir) if queue_dir else None,
        queue_max_bytes=options["remote_write_queue_max_bytes"],
        queue_max_age_seconds=options["remote_write_queue_max_age"],
        shards=options["remote_write_shards"],
        max_samples_per_send=options["remote_write_max_samples_per_send"],
        retry=RetryPolicy(max_backoff_seconds=options["remote_write_max_backoff"]),
    )
    config.validate()
    return config


def main() -> None:
    cli()
