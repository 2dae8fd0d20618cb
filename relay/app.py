"""Wiring of one relay process: ingest -> state -> expose, plus health, until SIGTERM."""

from __future__ import annotations

import asyncio
import logging
import signal
from dataclasses import dataclass, field
from pathlib import Path

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from prometheus_client import CollectorRegistry, disable_created_metrics

from kubensage_api.telemetry import telemetry_pb2 as tm
from kubensage_common.addresses import is_loopback, join_host_port, split_host_port
from kubensage_common.httpserver import HttpServer
from kubensage_common.kubeclient import load_api_client
from kubensage_common.protocol import DEFAULT_MAX_MESSAGE_BYTES
from kubensage_common.tls import server_credentials
from relay.agentsettings import agent_settings
from relay.enrich.health import EnrichmentHealth
from relay.enrich.kube import Enrichment, KubeEnrichment, NoEnrichment
from relay.export.exporter import ExportConfig, Exporter
from relay.export.metrics import RemoteWriteMetrics
from relay.expose.http import make_app
from relay.expose.textcache import NodeTextCache
from relay.expose.webconfig import BasicAuth, WebConfig, protect
from relay.ingest.auth import Authenticator, Authenticators
from relay.ingest.auth_mtls import ClientCertificates
from relay.ingest.auth_tokenfile import TokenFile
from relay.ingest.auth_tokenreview import (
    CACHE_SECONDS,
    DEFAULT_AUDIENCE,
    DEFAULT_SERVICE_ACCOUNTS,
    TokenReviewer,
)
from relay.ingest.decode import DEFAULT_MAX_COMPRESSION_RATIO, DecodeLimits
from relay.ingest.limits import ReportLimits
from relay.ingest.server import INGEST_SERVICE, add_ingest, server_options
from relay.ingest.service import AGE_JITTER, DEFAULT_RELOAD_SECONDS, IngestService
from relay.selfmetrics import RelayMetrics
from relay.series.profiles import parse_profiles
from relay.state.store import (
    DEFAULT_MAX_CLOCK_SKEW_SECONDS,
    DEFAULT_MAX_REPORT_AGE_SECONDS,
    NodeStore,
)

logger = logging.getLogger(__name__)

SHUTDOWN_GRACE_SECONDS = 5.0


@dataclass(frozen=True)
class RelayConfig:
    listen_address: str
    metrics_address: str
    metric_profile: str = "native"
    node_grace_seconds: float = 30.0
    agent_interval_seconds: float = 0.0
    max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES
    max_compression_ratio: int = DEFAULT_MAX_COMPRESSION_RATIO
    limits: ReportLimits = field(default_factory=ReportLimits)
    max_clock_skew_seconds: float = DEFAULT_MAX_CLOCK_SKEW_SECONDS
    max_report_age_seconds: float = DEFAULT_MAX_REPORT_AGE_SECONDS
    tls_cert_file: str | None = None
    tls_key_file: str | None = None
    tls_client_ca_file: str | None = None
    tls_client_crl_file: str | None = None
    token_file: str | None = None
    token_review: bool = False
    token_review_audience: str = DEFAULT_AUDIENCE
    token_review_service_accounts: tuple[str, ...] = DEFAULT_SERVICE_ACCOUNTS
    token_review_timeout_seconds: float = 5.0
    auth_reload_seconds: float = DEFAULT_RELOAD_SECONDS
    web: WebConfig = field(default_factory=WebConfig)
    kube_enrichment: bool = True
    kubeconfig: str | None = None
    pod_labels: str = ""
    cluster_name: str = ""
    kube_sync_timeout_seconds: float = 30.0
    kube_resync_seconds: float = 3600.0
    check_overrides: tuple[tm.CheckOverride, ...] = ()
    expose_node_series: bool = True
    export: ExportConfig | None = None
    max_connection_age_seconds: float = 300.0
    max_connection_age_grace_seconds: float = 60.0


def start_enrichment(config: RelayConfig, registry: CollectorRegistry) -> Enrichment:
    """Kubernetes enrichment when an API server is configured; otherwise none, said once."""
    if not config.kube_enrichment:
        logger.info("Kubernetes enrichment off (--no-kube-enrichment)")
        return NoEnrichment(config.cluster_name)
    loaded = load_api_client(config.kubeconfig)
    if loaded is None:
        logger.info(
            "Kubernetes enrichment off: no in-cluster service account and no "
            "kubeconfig; pods keep their CRI names and labels"
        )
        return NoEnrichment(config.cluster_name)
    api, context_cluster = loaded
    enrichment = KubeEnrichment(
        api,
        pod_labels=config.pod_labels,
        cluster_name=config.cluster_name or context_cluster,
        sync_timeout_seconds=config.kube_sync_timeout_seconds,
        resync_seconds=config.kube_resync_seconds,
    )
    enrichment.start()
    registry.register(EnrichmentHealth(enrichment))
    logger.info("Kubernetes enrichment on (%s)", api.configuration.host)
    return enrichment


def decode_limits(config: RelayConfig) -> DecodeLimits:
    return DecodeLimits(config.max_message_bytes, config.max_compression_ratio, config.limits)


def build_authenticators(config: RelayConfig) -> Authenticators:
    """Every identity mode the configuration names; ValueError/OSError when one is unusable."""
    modes: list[Authenticator] = []
    if config.token_file and config.token_review:
        raise ValueError("--token-file and --token-review both read the bearer token: pick one")
    if config.token_file:
        modes.append(TokenFile(Path(config.token_file)))
    if config.token_review:
        loaded = load_api_client(config.kubeconfig)
        if loaded is None:
            raise ValueError(
                "--token-review needs the Kubernetes API: run in a pod or give --kubeconfig"
            )
        modes.append(
            TokenReviewer(
                loaded[0],
                audience=config.token_review_audience,
                service_accounts=config.token_review_service_accounts,
                timeout_seconds=config.token_review_timeout_seconds,
                # a revoked token must fail the next check of its streams
                cache_seconds=min(CACHE_SECONDS, config.auth_reload_seconds / 2),
            )
        )
    if config.tls_client_ca_file:
        crl = Path(config.tls_client_crl_file) if config.tls_client_crl_file else None
        modes.append(ClientCertificates(Path(config.tls_client_ca_file), crl))
    return Authenticators(modes)


def log_authentication(auth: Authenticators, listen_address: str) -> None:
    """Say at start what binds a report to its node, and loudly when nothing does."""
    for mode in auth.modes:
        logger.info("agent authentication: %s", mode.describe())
    if not auth:
        host, _ = split_host_port(listen_address)
        log = logger.info if is_loopback(host) else logger.warning
        log("no agent authentication: any peer may report as any node")


def _connection_age_options(config: RelayConfig) -> list[tuple[str, int]]:
    """The transport's backstop behind the streams' own max age (see IngestService).

    A stream ends itself cleanly after an ack once past its jittered age; the
    connection's GOAWAY comes later, so it only cuts a stream whose agent sent
    nothing for the whole grace period.
    """
    if config.max_connection_age_seconds <= 0:
        return []
    backstop = config.max_connection_age_seconds * (1 + 2 * AGE_JITTER)
    return [
        ("grpc.max_connection_age_ms", int(backstop * 1000)),
        ("grpc.max_connection_age_grace_ms", int(config.max_connection_age_grace_seconds * 1000)),
    ]


def _grpc_server(config: RelayConfig, ingest: IngestService) -> tuple[grpc.aio.Server, int, str]:
    server = grpc.aio.server(
        options=[*server_options(ingest.limits), *_connection_age_options(config)]
    )
    add_ingest(server, ingest)
    host, port = split_host_port(config.listen_address)
    target = join_host_port(host, port)
    if config.tls_cert_file and config.tls_key_file:
        credentials = server_credentials(
            config.tls_cert_file, config.tls_key_file, config.tls_client_ca_file
        )
        return server, server.add_secure_port(target, credentials), host
    return server, server.add_insecure_port(target), host


async def serve(config: RelayConfig, auth: Authenticators | None = None) -> None:
    # *_created samples double the series count for no use on a relay's counters
    disable_created_metrics()  # type: ignore[no-untyped-call]
    auth = auth if auth is not None else build_authenticators(config)
    log_authentication(auth, config.listen_address)
    store = NodeStore(
        config.node_grace_seconds,
        max_clock_skew_seconds=config.max_clock_skew_seconds,
        max_report_age_seconds=config.max_report_age_seconds,
    )
    registry = CollectorRegistry()
    metrics = RelayMetrics(registry)
    enrichment = start_enrichment(config, registry)
    profiles = parse_profiles(config.metric_profile)
    nodes = (
        NodeTextCache(store, profiles, enrichment, metrics.exposition_errors.inc)
        if config.expose_node_series
        else None
    )
    exporter = None
    if config.export is not None:
        exporter = Exporter(config.export, profiles, enrichment, RemoteWriteMetrics(registry))
        exporter.start()
    settings = agent_settings(config.agent_interval_seconds, config.check_overrides)
    ingest = IngestService(
        store,
        metrics,
        settings,
        decode_limits(config),
        auth,
        reload_seconds=config.auth_reload_seconds,
        exporter=exporter,
        max_stream_age_seconds=config.max_connection_age_seconds,
    )
    server, grpc_port, grpc_host = _grpc_server(config, ingest)
    health_servicer = health.aio.HealthServicer()  # type: ignore[attr-defined]
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    await server.start()
    for service in ("", INGEST_SERVICE):
        await health_servicer.set(service, health_pb2.HealthCheckResponse.SERVING)

    app = make_app(registry, store, nodes, ready=enrichment.ready)
    if config.web.users:
        app = protect(app, BasicAuth(config.web.users))
    http_host, http_port = split_host_port(config.metrics_address)
    http = HttpServer(http_host, http_port, app, config.web.ssl_context())
    http.start()
    logger.info(
        "relay ingest on %s (%s, %s), metrics on %s://%s/metrics (%s), profile %s",
        join_host_port(grpc_host, grpc_port),
        "TLS" if config.tls_cert_file else "plaintext",
        " + ".join(mode.mode for mode in auth.modes) or "no authentication",
        "https" if config.web.cert_file else "http",
        join_host_port(http_host, http.port),
        "node series and relay health" if nodes is not None else "relay health only",
        config.metric_profile,
    )

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    logger.info("relay stopping")
    await health_servicer.enter_graceful_shutdown()
    await server.stop(SHUTDOWN_GRACE_SECONDS)
    ingest.close()
    if exporter is not None:
        await asyncio.to_thread(exporter.stop, SHUTDOWN_GRACE_SECONDS)
    http.stop()
    if isinstance(enrichment, KubeEnrichment):
        enrichment.stop()
    logger.info(
        "relay stopped: %.0f reports accepted",
        registry.get_sample_value("kubensage_relay_reports_received_total") or 0,
    )
