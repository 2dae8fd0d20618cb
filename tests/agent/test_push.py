"""The push path: bounded queue, backoff, steady ticks, and delivery across a relay outage."""

from __future__ import annotations

import asyncio
import contextlib
import random

import pytest

from kubensage_agent.push.queue import ReportQueue
from kubensage_agent.push.runner import next_tick
from kubensage_agent.push.stream import StreamSender
from kubensage_api.telemetry import telemetry_pb2 as tm
from kubensage_common.backoff import Backoff
from relay.state.store import NodeStore
from tests.support.inprocess_relay import InProcessRelay
from tests.support.reports import report


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
