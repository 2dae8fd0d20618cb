"""Simulated agents: many concurrent streams sending realistic reports, with ack latencies.

Used by the load test (correctness: zero errors, every ack) and by `make bench` (figures).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field

import grpc

from kubensage_api.telemetry import telemetry_pb2 as tm
from kubensage_api.telemetry import telemetry_pb2_grpc
from tests.support.reports import container, full_report, pod, report


def node_report(node: str, agent_id: str, sequence: int, containers: int) -> tm.Metrics:
    """A node whose containers carry only the figures CRI gives: the lightest report."""
    pods = [
        pod(
            f"{node}-pod-{i}",
            namespace=f"ns-{i % 10}",
            containers=[container("app", f"{node}-c{i}")],
        )
        for i in range(containers)
    ]
    return report(node=node, sequence=sequence, pods=pods, agent_id=agent_id)


def full_node_report(node: str, agent_id: str, sequence: int, containers: int) -> tm.Metrics:
    """A node as the agent reports it with every collector on (`full_report`)."""
    return full_report(node=node, sequence=sequence, containers=containers, agent_id=agent_id)


# (node, agent id, sequence, containers) -> the node's report
ReportMaker = Callable[[str, str, int, int], tm.Metrics]


@dataclass
class LoadResult:
    sent: int = 0
    acked: int = 0
    errors: list[str] = field(default_factory=list)
    ack_latencies: list[float] = field(default_factory=list)
    seconds: float = 0.0


IngestCall = grpc.aio.StreamStreamCall[tm.AgentMessage, tm.RelayMessage]


async def send_for_ack(call: IngestCall, report: tm.Metrics) -> tuple[int, float]:
    """Send one report and wait for the next ack: its sequence and the seconds it took."""
    started = time.perf_counter()
    await call.write(tm.AgentMessage(report=report))
    while True:
        answer = await call.read()
        if answer is grpc.aio.EOF:
            raise RuntimeError("relay ended the stream early")
        if answer.HasField("ack"):
            return answer.ack.sequence, time.perf_counter() - started


async def stream_reports(
    address: str,
    hello: tm.Hello,
    reports: Iterable[tm.Metrics],
    result: LoadResult,
    end_cleanly: bool = True,
) -> None:
    """One agent stream: hello, then each report, waiting for its ack before the next.

    A clean end makes the relay drop the node at once; `end_cleanly=False` cancels the
    stream instead, as a vanished agent would, so the node stays for the grace period.
    """
    async with grpc.aio.insecure_channel(address, compression=grpc.Compression.Gzip) as channel:
        call = telemetry_pb2_grpc.IngestStub(channel).Stream()  # type: ignore[call-arg]
        await call.write(tm.AgentMessage(hello=hello))
        for message in reports:
            result.sent += 1
            acked, latency = await send_for_ack(call, message)
            result.ack_latencies.append(latency)
            if acked == message.sequence:
                result.acked += 1
        if not end_cleanly:
            call.cancel()
            return
        await call.done_writing()
        code = await call.code()
        if code != grpc.StatusCode.OK:
            raise RuntimeError(f"stream ended with {code.name}")


def _numbered(template: tm.Metrics, count: int) -> Iterator[tm.Metrics]:
    for sequence in range(1, count + 1):
        template.sequence = sequence
        template.collected_at_unix_nanos = time.time_ns()
        yield template


async def _agent(
    address: str,
    index: int,
    reports: int,
    containers: int,
    result: LoadResult,
    *,
    end_cleanly: bool,
    make_report: ReportMaker,
) -> None:
    node, agent_id = f"load-node-{index:04d}", f"load-agent-{index:04d}"
    template = make_report(node, agent_id, 1, containers)
    hello = tm.Hello(agent_id=agent_id, node_name=node)
    await stream_reports(address, hello, _numbered(template, reports), result, end_cleanly)


async def run_load(
    address: str,
    agents: int,
    reports: int,
    containers: int,
    *,
    timeout: float = 300.0,
    first_index: int = 0,
    end_cleanly: bool = True,
    make_report: ReportMaker = node_report,
) -> LoadResult:
    """`agents` concurrent streams, each sending `reports` reports, bounded by `timeout`."""
    result = LoadResult()
    started = time.perf_counter()

    async def guarded(index: int) -> None:
        try:
            await _agent(
                address,
                index,
                reports,
                containers,
                result,
                end_cleanly=end_cleanly,
                make_report=make_report,
            )
        except (grpc.aio.AioRpcError, RuntimeError) as exc:
            result.errors.append(f"agent {index}: {exc}")

    indexes = range(first_index, first_index + agents)
    await asyncio.wait_for(asyncio.gather(*(guarded(i) for i in indexes)), timeout)
    result.seconds = time.perf_counter() - started
    return result


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))] if ordered else 0.0
