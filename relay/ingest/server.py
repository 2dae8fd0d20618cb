"""The gRPC server of the ingest port: options that bound what a client can make it hold.

gRPC applies `grpc.max_receive_message_length` to a message after decompressing it,
and decompresses before the application sees anything: a 15 KB gzip bomb would be
inflated in full. With per-message decompression off, the limit applies to the bytes
on the wire and the relay inflates the message itself, within a size and a ratio
bound (relay.ingest.decode). Only identity and gzip are accepted (the agent's).
"""

from __future__ import annotations

from typing import Any

import grpc

from kubensage_api.telemetry import telemetry_pb2 as tm
from relay.ingest.decode import DecodeLimits
from relay.ingest.service import IngestService

INGEST_SERVICE = "kubensage.telemetry.v1.Ingest"
# Bits of grpc_compression_algorithm: NONE = 0, DEFLATE = 1, GZIP = 2.
IDENTITY_AND_GZIP = 1 << 0 | 1 << 2
MAX_SEND_MESSAGE_BYTES = 1024 * 1024  # acks and settings only


def server_options(limits: DecodeLimits) -> list[tuple[str, Any]]:
    return [
        ("grpc.max_receive_message_length", limits.max_wire_bytes),
        ("grpc.max_send_message_length", MAX_SEND_MESSAGE_BYTES),
        ("grpc.per_message_decompression", 0),
        ("grpc.compression_enabled_algorithms_bitset", IDENTITY_AND_GZIP),
        ("grpc.keepalive_time_ms", 30_000),
        ("grpc.http2.min_ping_interval_without_data_ms", 10_000),
    ]


def add_ingest(server: grpc.aio.Server, service: IngestService) -> None:
    """Serve `service` on raw request bytes, so it decodes them itself within limits."""
    handler = grpc.stream_stream_rpc_method_handler(
        service.Stream,
        request_deserializer=None,
        response_serializer=tm.RelayMessage.SerializeToString,
    )
    server.add_generic_rpc_handlers(
        (grpc.method_handlers_generic_handler(INGEST_SERVICE, {"Stream": handler}),)
    )
