"""A relay ingest server inside the test process, on a loopback port, for stream-level tests."""

from __future__ import annotations

import grpc
from prometheus_client import CollectorRegistry

from kubensage_api.telemetry import telemetry_pb2 as tm
from kubensage_api.telemetry import telemetry_pb2_grpc
from relay.ingest.auth import TokenFile
from relay.ingest.service import IngestService
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
        tokens: TokenFile | None = None,
        max_message_bytes: int | None = None,
        max_stream_age_seconds: float = 0.0,
        server_options: list[tuple[str, int]] | None = None,
    ) -> None:
        self.store = store if store is not None else NodeStore(grace_seconds=30)
        self.registry = CollectorRegistry()
        self.metrics = RelayMetrics(self.registry)
        options = (
            [("grpc.max_receive_message_length", max_message_bytes)] if max_message_bytes else []
        ) + (server_options or [])
        self.server = grpc.aio.server(options=options)
        telemetry_pb2_grpc.add_IngestServicer_to_server(
            IngestService(
                self.store,
                self.metrics,
                settings,
                tokens=tokens,
                max_stream_age_seconds=max_stream_age_seconds,
            ),
            self.server,
        )
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
