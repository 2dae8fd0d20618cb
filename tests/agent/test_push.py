"""The push path: bounded queue, backoff, steady ticks, and delivery across a relay outage."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import threading
from pathlib import Path

import pytest

from kubensage_agent.push.queue import ReportQueue
from kubensage_agent.push.runner import next_tick
from kubensage_agent.push.stream import StreamSender
from kubensage_agent.state.spool import Spool
from kubensage_api.telemetry import telemetry_pb2 as tm
from kubensage_common.backoff import Backoff
from relay.ingest.auth_tokenfile import TokenFile
from relay.ingest.decode import DecodeLimits
from relay.ingest.limits import ReportLimits
from relay.state.store import NodeStore
from tests.support.inprocess_relay import InProcessRelay
from tests.support.reports import pod, report

MIB = 1024 * 1024
PUT_LANDS_SECONDS = 1.0


def test_full_queue_drops_oldest_and_counts() -> None:
    queue = ReportQueue(capacity=3)
    for sequence in range(1, 6):
        queue.put(report(sequence=sequence))
    assert queue.dropped_total == 2
    assert [queue.after(0).sequence] == [3]  # type: ignore[union-attr]
    assert queue.ack(4) == 2
    assert len(queue) == 1 and queue.after(4).sequence == 5  # type: ignore[union-attr]
    with pytest.raises(ValueError):
        ReportQueue(capacity=0)


def test_a_report_dropped_by_a_put_while_the_loop_reads_it_is_counted_once(
    tmp_path: Path,
) -> None:
    """The collection thread puts while the stream's loop reads: a put into a full queue
    that lands while the loop is reading the oldest report from the spool waits for that
    read, instead of deleting the record under it (which made the read fail)."""
    queue = ReportQueue(capacity=1, spool=Spool(tmp_path, 16 * MIB, 3600))
    queue.put(report(sequence=1))
    spool, read = queue.spool, queue.spool.read  # type: ignore[union-attr]
    put_done = threading.Event()

    def put_the_next() -> None:
        queue.put(report(sequence=2))
        put_done.set()

    putting = threading.Thread(target=put_the_next)

    def read_while_a_put_lands(sequence: int) -> tm.Metrics | None:
        putting.start()
        put_done.wait(PUT_LANDS_SECONDS)  # a put that waits for this read never lands here
        return read(sequence)

    spool.read = read_while_a_put_lands  # type: ignore[method-assign,union-attr]
    assert queue.after(0).sequence == 1  # type: ignore[union-attr]
    putting.join(30)
    assert not putting.is_alive()
    spool.read = read  # type: ignore[method-assign,union-attr]
    assert queue.dropped_total == 1
    assert queue.spool.corrupt_total == 0  # type: ignore[union-attr]
    assert [queue.after(0).sequence] == [2]  # type: ignore[union-attr]


def test_a_spool_write_stalled_on_disk_does_not_stall_the_loop(tmp_path: Path) -> None:
    """The collection thread's spool write may hang on a stalled disk; the loop's reads
    and acknowledgements must not wait for it, or the agent could not even stop."""
    queue = ReportQueue(capacity=10, spool=Spool(tmp_path, 16 * MIB, 3600))
    queue.put(report(sequence=1))
    spool = queue.spool
    assert spool is not None
    write_file, writing, disk_back = spool.write_file, threading.Event(), threading.Event()

    def stalled_write(one: tm.Metrics) -> int:
        writing.set()
        disk_back.wait(30)
        return write_file(one)

    spool.write_file = stalled_write  # type: ignore[method-assign]
    putting = threading.Thread(target=queue.put, args=(report(sequence=2),))
    putting.start()
    try:
        assert writing.wait(30)
        loop_side: list[object] = []
        acknowledging = threading.Thread(
            target=lambda: loop_side.extend([queue.after(0), queue.ack(1)])
        )
        acknowledging.start()
        acknowledging.join(PUT_LANDS_SECONDS * 5)
        assert not acknowledging.is_alive(), "the loop's side waited for the stalled write"
        assert [getattr(loop_side[0], "sequence", None), loop_side[1]] == [1, 1]
    finally:
        disk_back.set()
        putting.join(30)
    assert [queue.after(1).sequence] == [2]  # type: ignore[union-attr]
    assert sorted(path.name for path in tmp_path.glob("*.report")) == [f"{2:020d}.report"]


def test_backoff_grows_with_jitter_up_to_the_cap_and_resets() -> None:
    backoff = Backoff(initial=0.5, maximum=8, rng=random.Random(7))
    delays = [backoff.next_delay() for _ in range(10)]
    ceilings = [min(8, 0.5 * 2**i) for i in range(10)]
    assert all(c / 2 <= d <= c for d, c in zip(delays, ceilings, strict=True))
    assert max(delays) <= 8
    backoff.reset()
    assert backoff.next_delay() <= 0.5


def test_ticks_stay_on_the_grid_and_skip_what_a_slow_cycle_missed() -> None:
    assert next_tick(100.0, 10.0, 103.0) == 110.0
    assert next_tick(100.0, 10.0, 135.5) == 140.0  # three ticks missed: none run late
    assert next_tick(100.0, 10.0, 110.0) == 120.0


def test_every_report_arrives_exactly_once_across_a_relay_outage() -> None:
    produced = 12

    async def scenario() -> tuple[NodeStore, float, float, StreamSender]:
        store = NodeStore(grace_seconds=60)
        queue = ReportQueue(capacity=100)
        hello = tm.Hello(agent_id="agent-1", node_name="node-a")
        relay = InProcessRelay(store=store)
        port = relay.port
        await relay.server.start()
        sender = StreamSender(relay.address, lambda: hello, queue, lambda s: None, 1 << 20)
        task = asyncio.create_task(sender.run())
        for sequence in range(1, 5):
            queue.put(report(sequence=sequence))
        await wait_for(lambda: len(queue) == 0)
        first_received = relay.value("kubensage_relay_reports_received_total")
        await relay.server.stop(grace=None)
        for sequence in range(5, produced + 1):  # produced while the relay is down
            queue.put(report(sequence=sequence))
            await asyncio.sleep(0.02)
        second = InProcessRelay(port=port, store=store)
        await second.server.start()
        await wait_for(lambda: len(queue) == 0)
        second_received = second.value("kubensage_relay_reports_received_total")
        await sender.flush_and_close(1.0)
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await second.server.stop(grace=None)
        return store, first_received, second_received, sender

    store, first, second, sender = asyncio.run(scenario())
    print(f"delivered {first:.0f} before and {second:.0f} after the outage of {produced}")
    assert first + second == produced
    assert store.highest_sequence("agent-1") == produced
    assert sender.reconnects_total >= 1


async def wait_for(condition, timeout: float = 30.0) -> None:  # type: ignore[no-untyped-def]
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not condition():
        if loop.time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.02)


async def run_sender(
    relay: InProcessRelay, queue: ReportQueue, until: object, **kwargs: object
) -> StreamSender:
    hello = tm.Hello(agent_id="agent-1", node_name="node-a")
    sender = StreamSender(relay.address, lambda: hello, queue, lambda s: None, 4 << 20, **kwargs)  # type: ignore[arg-type]
    task = asyncio.create_task(sender.run())
    try:
        await wait_for(until)
    finally:
        await sender.flush_and_close(0.5)
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    return sender


@pytest.mark.parametrize("why", ["too_large", "too_many_entries"])
def test_a_report_the_relay_refuses_is_dropped_and_the_rest_delivered(why: str) -> None:
    """Resending a refused report would be refused forever and block every later one."""
    limits = DecodeLimits(64 * 1024, report=ReportLimits(max_entries=200))
    refused = report(sequence=2)
    if why == "too_large":
        refused.pods[0].labels["blob"] = random.Random(2).randbytes(100_000).hex()
    else:
        refused.pods.extend(pod(f"p{i}") for i in range(300))

    async def scenario() -> tuple[StreamSender, InProcessRelay]:
        async with InProcessRelay(limits=limits) as relay:
            queue = ReportQueue(capacity=10)
            for r in (report(sequence=1), refused, report(sequence=3)):
                queue.put(r)
            sender = await run_sender(relay, queue, lambda: len(queue) == 0)
            return sender, relay

    sender, relay = asyncio.run(scenario())
    assert sender.refused_total == 1 and sender.highest_acked == 3
    assert relay.store.highest_sequence("agent-1") == 3
    assert relay.value("kubensage_relay_reports_received_total") == 2


def test_a_rotated_token_is_picked_up_by_reconnecting_before_the_old_one_expires(
    tmp_path: Path,
) -> None:
    relay_tokens = tmp_path / "relay-tokens"
    relay_tokens.write_text("token-one node-a\ntoken-two node-a\n")
    agent_token = tmp_path / "agent-token"
    agent_token.write_text("token-one\n")

    async def scenario() -> tuple[StreamSender, InProcessRelay]:
        async with InProcessRelay(tokens=TokenFile(relay_tokens)) as relay:
            queue = ReportQueue(capacity=10)
            queue.put(report(sequence=1))

            def rotate_then_deliver() -> bool:
                if len(queue) == 0 and agent_token.read_text() == "token-one\n":
                    agent_token.write_text("token-two\n")  # as the kubelet rotates it
                    queue.put(report(sequence=2))
                return (
                    len(queue) == 0
                    and relay.value("kubensage_relay_streams_closed_total", how="clean") >= 1
                )

            sender = await run_sender(relay, queue, rotate_then_deliver, token_file=agent_token)
            return sender, relay

    sender, relay = asyncio.run(scenario())
    assert sender.reconnects_total >= 1 and sender.highest_acked == 2
    assert relay.value("kubensage_relay_streams_closed_total", how="lost") == 0
    assert relay.value("kubensage_relay_auth_failures_total", reason="invalid") == 0


def test_an_agent_refused_for_its_node_says_so_and_backs_off(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    relay_tokens = tmp_path / "relay-tokens"
    relay_tokens.write_text("token-b node-b\n")
    agent_token = tmp_path / "agent-token"
    agent_token.write_text("token-b\n")
    caplog.set_level(logging.WARNING)

    async def scenario() -> StreamSender:
        async with InProcessRelay(tokens=TokenFile(relay_tokens)) as relay:
            queue = ReportQueue(capacity=10)
            queue.put(report(sequence=1))  # for node-a: the token is for node-b only
            hello = tm.Hello(agent_id="agent-1", node_name="node-a")
            sender = StreamSender(
                relay.address, lambda: hello, queue, lambda s: None, 1 << 20, token_file=agent_token
            )
            task = asyncio.create_task(sender.run())
            await asyncio.sleep(3.0)
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            assert relay.value("kubensage_relay_auth_failures_total", reason="wrong_node") >= 1
            return sender

    sender = asyncio.run(scenario())
    assert sender.highest_acked == 0
    assert 1 <= sender.reconnects_total <= 5  # backoff 0.5, 1, 2 s...: not a hot loop
    assert any("refused to take reports for this node" in line for line in caplog.messages)
