"""Malformed and random input at the ingest port never stops the relay from serving /metrics."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import time

import grpc
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from kubensage_api.telemetry import telemetry_pb2 as tm
from relay.enrich.kube import NoEnrichment
from relay.expose.textcache import NodeTextCache
from relay.series.profiles import parse_profiles
from tests.conftest import require
from tests.support.inprocess_relay import InProcessRelay
from tests.support.reports import report

STREAM = "/kubensage.telemetry.v1.Ingest/Stream"
text = st.text(max_size=40)
labels = st.dictionaries(text, text, max_size=4)
numbers = st.floats(allow_nan=True, allow_infinity=True)


@st.composite
def weird_reports(draw: st.DrawFn) -> tm.Metrics:
    # mostly the hello's identity, so most reports reach the exposition
    node = draw(st.one_of(st.just("node-a"), st.just("node-a"), st.just("node-a"), text))
    r = report(
        node=node,
        # plausible numbering and times: far-off ones are refused before the exposition
        # (tests/relay/test_store.py, tests/hostile); the raw-bytes fuzz sends any
        sequence=draw(st.integers(0, 1000)),
        agent_id=draw(st.sampled_from(["agent-1", "agent-1", "agent-1", "", "other"])),
    )
    r.collected_at_unix_nanos = time.time_ns() + draw(st.integers(-60, 60)) * 10**9
    r.node.cpu_seconds_by_mode[draw(text)] = draw(numbers)
    r.node.load.load1 = draw(numbers)
    for _ in range(draw(st.integers(0, 3))):
        p = r.pods.add(name=draw(text), namespace=draw(text), labels=draw(labels))
        for _ in range(draw(st.integers(0, 3))):
            c = p.containers.add(
                name=draw(text),
                id=draw(text),
                image=draw(text),
                state=draw(st.integers(0, 10)),
                attempt=draw(st.integers(0, 9)),
            )
            c.cpu.usage_seconds_total = draw(numbers)
            c.memory.working_set_bytes = draw(st.integers(0, 2**64 - 1))
            psi = c.pressure.add(resource=draw(st.sampled_from(["cpu", "io", "bogus name!"])))
            psi.some.total_seconds = draw(numbers)
        net = p.network.add(name=draw(text))
        net.receive_bytes = draw(st.integers(0, 2**64 - 1))
    return r


def raw_stream(channel: grpc.aio.Channel) -> grpc.aio.StreamStreamMultiCallable:
    return channel.stream_stream(
        STREAM, request_serializer=lambda b: b, response_deserializer=lambda b: b
    )


async def send_raw(relay: InProcessRelay, messages: list[bytes]) -> None:
    async with grpc.aio.insecure_channel(relay.address) as channel:
        call = raw_stream(channel)(iter(messages), timeout=5)
        try:
            async for _ in call:
                pass
        except grpc.aio.AioRpcError:
            pass  # refusing garbage is the expected answer


def assert_scrape_is_valid(relay: InProcessRelay) -> str:
    nodes = NodeTextCache(
        relay.store, parse_profiles("both"), NoEnrichment(), relay.metrics.exposition_errors.inc
    )
    exposition = generate_latest(relay.registry).decode() + nodes.text()
    assert relay.value("kubensage_relay_exposition_errors_total") == 0
    families = list(text_string_to_metric_families(exposition))
    assert any(f.name == "kubensage_relay_reports_received" for f in families)
    return exposition


HELLO = tm.AgentMessage(hello=tm.Hello(agent_id="agent-1", node_name="node-a")).SerializeToString()
cases = {"raw": 0, "structured": 0}


@settings(max_examples=1500, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.lists(st.binary(max_size=300), min_size=1, max_size=4), st.booleans())
def test_random_bytes(chunks: list[bytes], with_hello: bool) -> None:
    async def scenario() -> None:
        async with InProcessRelay() as relay:
            await send_raw(relay, ([HELLO] if with_hello else []) + chunks)
            assert_scrape_is_valid(relay)

    cases["raw"] += 1
    asyncio.run(scenario())


async def send_and_scrape(relay: InProcessRelay, messages: list[bytes]) -> str | None:
    """Send on an open stream and scrape before closing it (a clean close drops the node)."""
    async with grpc.aio.insecure_channel(relay.address) as channel:
        call = raw_stream(channel)(timeout=5)
        try:
            for message in messages:
                await call.write(message)
            for _ in messages[1:]:  # every report is acknowledged, stored or not
                await call.read()
            exposition = assert_scrape_is_valid(relay) if relay.store.snapshot() else None
            await call.done_writing()
            return exposition
        except grpc.aio.AioRpcError:
            return None  # refusing the stream is an answer too; the scrape is checked below


@settings(max_examples=400, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.lists(weird_reports(), min_size=1, max_size=3))
def test_structured_but_weird_reports(reports: list[tm.Metrics]) -> None:
    async def scenario() -> None:
        async with InProcessRelay() as relay:
            messages = [HELLO] + [tm.AgentMessage(report=r).SerializeToString() for r in reports]
            exposition = await send_and_scrape(relay, messages)
            assert_scrape_is_valid(relay)
            promtool = shutil.which("promtool")
            if exposition is not None:
                stored["reports"] += 1
            if promtool and exposition is not None:
                result = subprocess.run(
                    [promtool, "check", "metrics"],
                    input=exposition,
                    capture_output=True,
                    text=True,
                    timeout=30,
                    check=False,
                )
                # promtool lints names; a parse error would say "error parsing"
                assert "error parsing" not in result.stdout + result.stderr

    cases["structured"] += 1
    asyncio.run(scenario())


stored = {"reports": 0}


def test_fuzz_case_count_is_reported() -> None:
    require(shutil.which("promtool") is not None, "promtool for structured fuzz validation")
    print(
        f"fuzz cases run: {cases['raw']} raw byte streams, {cases['structured']} weird "
        f"reports ({stored['reports']} of them stored and exposed)"
    )
    assert cases["raw"] >= 1000 and cases["structured"] >= 100
    assert stored["reports"] >= cases["structured"] // 4
