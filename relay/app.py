"""Wiring of one relay process: ingest -> state -> expose, plus health, until SIGTERM."""

from __future__ import annotations

import asyncio
import signal
from dataclasses import dataclass

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from loguru import logger
from prometheus_client import CollectorRegistry, disable_created_metrics

from kubensage_api.telemetry import telemetry_pb2 as tm
from kubensage_api.telemetry import telemetry_pb2_grpc
from kubensage_common.addresses import is_loopback, join_host_port, split_host_port
from relay.expose.collector import ReportCollector
from relay.expose.http import HttpServer, make_app
from relay.ingest.service import IngestService
from relay.selfmetrics import RelayMetrics
from relay.state.store import NodeStore

INGEST_SERVICE = "kubensage.telemetry.v1.Ingest"
SHUTDOWN_GRACE_SECONDS = 5.0


@dataclass(frozen=True)
class RelayConfig:
    listen_address: str
    metrics_address: str
    metric_profile: str = "native"
    node_grace_seconds: float = 30.0
    agent_interval_seconds: float = 0.0
    max_message_bytes: int = 16 * 1024 * 1024


async def serve(config: RelayConfig) -> None:
    # *_created samples double the series count for no use on a relay's counters
    disable_created_metrics()  # type: ignore[no-untyped-call]
    store = NodeStore(config.node_grace_seconds)
    registry = CollectorRegistry()
    metrics = RelayMetrics(registry)
    registry.register(ReportCollector(store, config.metric_profile))
    settings = (
        tm.Settings(interval_seconds=config.agent_interval_seconds)
        if config.agent_interval_seconds > 0
        else None
    )

    server = grpc.aio.server(
        options=[
            ("grpc.max_receive_message_length", config.max_message_bytes),
            ("grpc.max_send_message_length", config.max_message_bytes),
            ("grpc.keepalive_time_ms", 30_000),
            ("grpc.http2.min_ping_interval_without_data_ms", 10_000),
        ]
    )
    telemetry_pb2_grpc.add_IngestServicer_to_server(IngestService(store, metrics, settings), server)
    # grpc-stubs does not describe grpc_health's asyncio servicer
    health_servicer = health.aio.HealthServicer()  # type: ignore[attr-defined]
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    grpc_host, grpc_port = split_host_port(config.listen_address)
    if not is_loopback(grpc_host):
        logger.warning("gRPC ingest on {} is plaintext and unauthenticated", config.listen_address)
    bound = server.add_insecure_port(join_host_port(grpc_host, grpc_port))
    await server.start()
    for service in ("", INGEST_SERVICE):
        await health_servicer.set(service, health_pb2.HealthCheckResponse.SERVING)

    http_host, http_port = split_host_port(config.metrics_address)
    http = HttpServer(http_host, http_port, make_app(registry, ready=lambda: True))
    http.start()
    logger.info(
        "relay ingest on {}, metrics on http://{}/metrics (profile {})",
        join_host_port(grpc_host, bound),
        join_host_port(http_host, http.port),
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
    http.stop()
    logger.info("relay stopped")
