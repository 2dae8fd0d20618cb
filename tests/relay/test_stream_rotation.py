"""Streams end at their max age and agents come back at once; clean closes drop the node.

Over real gRPC with the agent's own StreamSender: what a relay replica does so that
agents spread over new replicas after a scale-out, and what grpcio's transport-level
max connection age does to a stream that outlives it.
"""

from __future__ import annotations

import asyncio
import contextlib

import grpc

from kubensage_agent.push.queue import ReportQueue
from kubensage_agent.push.stream import StreamSender
from kubensage_api.telemetry import telemetry_pb2 as tm
from kubensage_api.telemetry import telemetry_pb2_grpc
from tests.support.inprocess_relay import InProcessRelay
from tests.support.reports import report

HELLO = tm.Hello(agent_id="agent-1", node_name="node-a")


def test_a_stream_past_its_max_age_ends_cleanly_and_the_agent_resumes_without_loss() -> None:
    async def scenario() -> tuple[InProcessRelay, StreamSender, int]:
        async with InProcessRelay(max_stream_age_seconds=0.5) as relay:
            queue = ReportQueue(100)
            sender = StreamSender(relay.address, lambda: HELLO, queue, lambda s: None, 1 << 20)
            task = asyncio.create_task(sender.run())
            made = 0
            for made in range(1, 31):  # about three seconds of reports, several max ages
                queue.put(report(sequence=made))
                await asyncio.sleep(0.1)
            for _ in range(100):
                if not len(queue):
                    break
                await asyncio.sleep(0.05)
            await sender.flush_and_close(2)
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            return relay, sender, made

    relay, sender, made = asyncio.run(scenario())
    rotated = relay.value("kubensage_relay_streams_rotated_total")
    print(
        f"{made} reports over {rotated:.0f} rotated streams, {sender.reconnects_total} reconnects"
    )
    assert rotated >= 2
    assert sender.reconnects_total >= rotated - 1  # the last rotation may meet our own stop
    assert relay.value("kubensage_relay_streams_closed_total", how="lost") == 0
    assert relay.value("kubensage_relay_reports_received_total") == made  # each once, none lost
    assert sender.highest_acked == made


async def _open_stream(
    relay: InProcessRelay, channel: grpc.aio.Channel, sequence: int = 1
) -> object:
    call = telemetry_pb2_grpc.IngestStub(channel).Stream()  # type: ignore[call-arg]
    await call.write(tm.AgentMessage(hello=HELLO))
    await call.write(tm.AgentMessage(report=report(sequence=sequence)))
    answer = await call.read()
    assert answer.ack.sequence == sequence
    assert [view.node for view in relay.store.snapshot()] == ["node-a"]
    return call


def test_a_clean_close_drops_the_node_at_once_a_lost_stream_keeps_it_for_the_grace() -> None:
    async def scenario() -> tuple[list[str], list[str]]:
        async with InProcessRelay() as relay:
            async with grpc.aio.insecure_channel(relay.address) as channel:
                call = await _open_stream(relay, channel)
                await call.done_writing()  # type: ignore[attr-defined]
                await call.code()  # type: ignore[attr-defined]
            after_clean = [view.node for view in relay.store.snapshot()]
            async with grpc.aio.insecure_channel(relay.address) as channel:
                call = await _open_stream(relay, channel, sequence=2)
                call.cancel()  # type: ignore[attr-defined]
            for _ in range(50):
                if relay.value("kubensage_relay_streams_closed_total", how="lost"):
                    break
                await asyncio.sleep(0.05)
            after_lost = [view.node for view in relay.store.snapshot()]
            return after_clean, after_lost

    after_clean, after_lost = asyncio.run(scenario())
    assert after_clean == []
    assert after_lost == ["node-a"]


def test_grpc_max_connection_age_cuts_a_stream_that_outlives_its_grace() -> None:
    """The transport backstop: GOAWAY at the age, the stream cut after the grace.

    This is why the relay ends streams itself (cleanly) before the connection's age:
    a cut stream counts as lost and its node stays for the grace period.
    """

    async def scenario() -> tuple[grpc.StatusCode, float]:
        options = [("grpc.max_connection_age_ms", 300), ("grpc.max_connection_age_grace_ms", 300)]
        async with InProcessRelay(extra_server_options=options) as relay:
            async with grpc.aio.insecure_channel(relay.address) as channel:
                call = await _open_stream(relay, channel)
                code = await asyncio.wait_for(call.code(), 20)  # type: ignore[attr-defined]
            for _ in range(50):
                if relay.value("kubensage_relay_streams_closed_total", how="lost"):
                    break
                await asyncio.sleep(0.05)
            return code, relay.value("kubensage_relay_streams_closed_total", how="lost")

    code, lost = asyncio.run(scenario())
    print(f"a silent stream past max age + grace ends with {code.name}")
    assert code == grpc.StatusCode.UNAVAILABLE
    assert lost == 1
