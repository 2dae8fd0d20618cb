"""Bounded decoding: what gRPC does with compressed messages, bombs refused before they
allocate, and the wire scan never missing a report that needs cutting."""

from __future__ import annotations

import asyncio
import gzip
import random
import tracemalloc
from typing import Any

import grpc
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kubensage_api.telemetry import telemetry_pb2 as tm
from relay.ingest.decode import DecodeError, DecodeLimits, MessageDecoder
from relay.ingest.limits import ReportLimits, enforce_limits
from relay.ingest.server import server_options
from relay.ingest.wirescan import build_plan, scan
from tests.support.hostile import field_bytes, repeated_empty_pods, varint
from tests.support.reports import container, full_report, pod, report

STREAM = "/kubensage.telemetry.v1.Ingest/Stream"


async def _received_by_server(
    options: list[tuple[str, Any]], payload: bytes
) -> tuple[list[bytes], str]:
    """Send `payload` gzip-compressed to a raw-bytes server; what the handler got, and the
    status the client saw."""
    received: list[bytes] = []

    async def handler(requests: Any, _context: Any) -> Any:
        async for data in requests:
            received.append(data)
            yield b""

    server = grpc.aio.server(options=options)
    server.add_generic_rpc_handlers(
        (
            grpc.method_handlers_generic_handler(
                "kubensage.telemetry.v1.Ingest",
                {"Stream": grpc.stream_stream_rpc_method_handler(handler)},
            ),
        )
    )
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    status = "OK"
    try:
        async with grpc.aio.insecure_channel(
            f"127.0.0.1:{port}",
            compression=grpc.Compression.Gzip,
            options=[("grpc.max_send_message_length", 64 << 20)],
        ) as channel:
            call = channel.stream_stream(STREAM)(iter([payload]), timeout=10)
            try:
                async for _ in call:
                    pass
            except grpc.aio.AioRpcError as exc:
                status = f"{exc.code().name}: {exc.details()}"
    finally:
        await server.stop(None)
    return received, status


def test_grpc_limits_decompressed_size_unless_decompression_is_off() -> None:
    """Why the relay turns gRPC's decompression off: with it on, the limit applies after
    gRPC inflated the whole message; off, the handler gets the compressed bytes."""
    bomb = field_bytes(2, repeated_empty_pods(1_000_000))  # 2 MB of empty pods
    limit = [("grpc.max_receive_message_length", 64 * 1024)]
    received, status = asyncio.run(_received_by_server(limit, bomb))
    assert received == [] and status.startswith("RESOURCE_EXHAUSTED")
    assert "Decompressed message larger than max" in status
    received, status = asyncio.run(_received_by_server(server_options(DecodeLimits()), bomb))
    assert status == "OK"
    (data,) = received
    assert data.startswith(b"\x1f\x8b") and len(data) < len(bomb) // 100  # still gzip


def test_a_full_110_container_report_decodes_unchanged_within_the_defaults() -> None:
    message = tm.AgentMessage(report=full_report(containers=110))
    for p in message.report.pods:
        p.ClearField("annotations")  # the relay drops them; compare the rest
    raw = message.SerializeToString()
    decoded = MessageDecoder(DecodeLimits()).decode(gzip.compress(raw))
    assert decoded.cuts == {}
    assert decoded.message == tm.AgentMessage.FromString(raw)
    assert decoded.message_bytes == len(raw) < DecodeLimits().max_message_bytes // 4


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (gzip.compress(field_bytes(2, repeated_empty_pods(500_000))), "compression_ratio"),
        (gzip.compress(random.Random(1).randbytes(1_100_000)), "too_large"),
        (field_bytes(2, repeated_empty_pods(40_000)), "too_many_entries"),
        (field_bytes(2, (varint(999 << 3) + b"\x01") * 100), "unknown_fields"),
        (field_bytes(2, b"\x3a\x05\x00"), "malformed"),  # a pod longer than the report
        (b"\x12\x05\x0b\x00\x00\x00\x00", "malformed"),  # wire type 3 (a group)
        (b"\x1f\x8b\x08\x00garbage", "bad_compression"),
        (gzip.compress(b"\x0a\x00")[:-4], "bad_compression"),  # truncated
        (gzip.compress(b"\x0a\x00") + b"trailing", "bad_compression"),
        (field_bytes(2, field_bytes(1, b"\xff\xfe")), "malformed"),  # agent_id not UTF-8
    ],
    ids=[
        "gzip-bomb",
        "too-large",
        "entries",
        "unknown-fields",
        "overrun",
        "group",
        "not-gzip",
        "truncated-gzip",
        "trailing-gzip",
        "bad-utf8",
    ],
)
def test_bad_messages_are_refused_with_a_reason(payload: bytes, reason: str) -> None:
    with pytest.raises(DecodeError) as refused:
        MessageDecoder(DecodeLimits()).decode(payload)
    assert refused.value.reason == reason


def test_a_refused_bomb_never_allocates_its_entries() -> None:
    """A megabyte of empty pods would take ~80 MiB parsed; refused, it costs its buffer."""
    payload = field_bytes(2, repeated_empty_pods(500_000))
    limits = DecodeLimits(max_message_bytes=2 * 1024 * 1024)
    decoder = MessageDecoder(limits)
    tracemalloc.start()
    try:
        with pytest.raises(DecodeError):
            decoder.decode(payload)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 256 * 1024


# -- the scan flags every report the cut walk would change ------------------------------

SMALL = ReportLimits(
    max_pods=3,
    max_containers_per_pod=2,
    max_containers=4,
    max_labels=2,
    max_interfaces=2,
    max_cpus=2,
    max_other_entries=3,
    max_label_value_bytes=24,
)
short_or_long = st.one_of(st.text(max_size=8), st.text(min_size=20, max_size=40))


@st.composite
def near_the_limits(draw: st.DrawFn) -> tm.Metrics:
    pods = []
    for i in range(draw(st.integers(0, 4))):
        containers = [
            container(draw(short_or_long), f"c{i}{j}") for j in range(draw(st.integers(0, 3)))
        ]
        labels = draw(st.dictionaries(short_or_long, short_or_long, max_size=3))
        pods.append(pod(f"p{i}", draw(short_or_long), containers, labels=labels))
    r = report(node=draw(st.sampled_from(["node-a", "n" * 30])), pods=pods)
    for _ in range(draw(st.integers(0, 3))):
        r.node.cpus.add(cpu=draw(short_or_long))
    r.node.addresses.extend(draw(st.lists(short_or_long, max_size=4)))
    r.health.collector_errors_total.update(draw(st.dictionaries(short_or_long, st.just(1))))
    return r


@settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
@given(near_the_limits())
def test_the_scan_flags_every_report_that_needs_cutting(r: tm.Metrics) -> None:
    raw = tm.AgentMessage(report=r).SerializeToString()
    flagged = scan(raw, build_plan(tm.AgentMessage.DESCRIPTOR, SMALL), SMALL.max_entries)
    would_cut = enforce_limits(tm.AgentMessage.FromString(raw), SMALL)
    if would_cut:
        assert flagged.needs_cut, would_cut
