"""A relay ingest server inside the test process, on a loopback port, for stream-level tests.

It is built by the relay's own server code (options, raw-bytes handler), so what it
accepts and refuses is what the relay process does.
"""

from __future__ import annotations

from collections.abc import Sequence

import grpc
from prometheus_client import CollectorRegistry

from kubensage_api.telemetry import telemetry_pb2 as tm
from relay.ingest.auth import Authenticator, Authenticators
from relay.ingest.decode import DecodeLimits
from relay.ingest.server import add_ingest, server_options
from relay.ingest.service import Exporter, IngestService
from relay.selfmetrics import RelayMetrics
from relay.state.store import NodeStore


class InProcessRelay:
    def __init__(
        self,
        *,
        port: int = 0,
        settings: tm.Settings | None = None,
        store: NodeStore | None = None,
        credentials: grpc.ServerCredentials | None = None,
        tokens: Authenticator | None = None,
        authenticators: Sequence[Authenticator] = (),
        max_message_bytes: int | None = None,
        limits: DecodeLimits | None = None,
        reload_seconds: float = 60.0,
        exporter: Exporter | None = None,
        max_stream_age_seconds: float = 0.0,
        extra_server_options: list[tuple[str, int]] | None = None,
    ) -> None:
        self.store = store if store is not None else NodeStore(grace_seconds=30)
        self.registry = CollectorRegistry()
        self.metrics = RelayMetrics(self.registry)
        if limits is None:
            limits = DecodeLimits(max_message_bytes) if max_message_bytes else DecodeLimits()
        modes = [*([tokens] if tokens is not None else []), *authenticators]
        self.service = IngestService(
            self.store,
            self.metrics,
            settings,
            limits,
            Authenticators(modes),
            reload_seconds=reload_seconds,
            exporter=exporter,
            max_stream_age_seconds=max_stream_age_seconds,
        )
        self.server = grpc.aio.server(
            options=[*server_options(limits), *(extra_server_options or [])]
        )
        add_ingest(self.server, self.service)
        target = f"127.0.0.1:{port}"
        self.port = (
            self.server.add_secure_port(target, credentials)
            if credentials is not None
            else self.server.add_insecure_port(target)
        )

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def value(self, name: str, **labels: str) -> float:
        return self.registry.get_sample_value(name, labels) or 0.0

    async def __aenter__(self) -> InProcessRelay:
        await self.server.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.server.stop(grace=None)
        self.service.close()
