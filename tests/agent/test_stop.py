"""Stopping the agent: whatever was collected is delivered and the relay sees a clean close."""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
import sys
import threading
import time

import pytest

from kubensage_agent.push.queue import ReportQueue
from kubensage_agent.push.runner import AgentRunner, RunConfig
from kubensage_agent.push.stream import StreamSender
from kubensage_agent.report import ReportBuilder
from kubensage_api.telemetry import telemetry_pb2 as tm
from tests.agent.conftest import CAPTURED_HOST
from tests.agent.test_push import wait_for
from tests.support.inprocess_relay import InProcessRelay
from tests.support.reports import report

GATE_SECONDS = 30.0
WAKE_SECONDS = 10.0
EXIT_SECONDS = 60.0
# An agent on the captured host (argv[1]) that is stopped once its scenario, which builds
# `runner`, sets `reached`: it prints what `serve` returned, and must exit at all.
STOPPED_AGENT_HEAD = """
import asyncio, socket, sys, threading
from pathlib import Path
from kubensage_agent.collectors.errors import CollectorErrors
from kubensage_agent.collectors.node import NodeCollector
from kubensage_agent.hostfs import HostPaths
from kubensage_agent.push.runner import AgentRunner, RunConfig
from kubensage_agent.report import ReportBuilder

errors = CollectorErrors()
builder = ReportBuilder(
    agent_id="a", node=NodeCollector(HostPaths(Path(sys.argv[1])), "n", errors),
    runtime=None, errors=errors, cri_timeout=1,
)
reached = threading.Event()
"""
STOPPED_AGENT_TAIL = """
async def main():
    stop = asyncio.Event()
    serving = asyncio.create_task(runner.serve(stop))
    if not await asyncio.to_thread(reached.wait, 30):
        sys.exit("the scenario never reached the point to stop at")
    stop.set()
    return await serving
print("served", asyncio.run(main()), flush=True)
"""
# The first cycle never ends (a read stuck on a dead mount); the flush's share of the stop
# budget is printed.
HUNG_CYCLE = """
builder.build = lambda sequence: reached.set() or threading.Event().wait()
runner = AgentRunner(builder, RunConfig(relay_address="127.0.0.1:9", flush_timeout_seconds=2.0))
flush = runner.sender.flush_and_close
async def recorded_flush(grace):
    print("flush grace", grace, flush=True)
    return await flush(grace)
runner.sender.flush_and_close = recorded_flush
"""
# The relay name's lookup never returns (a DNS server gone silent).
HUNG_LOOKUP = """
def never_answers(*args, **kwargs):
    reached.set()
    threading.Event().wait()
socket.getaddrinfo = never_answers
runner = AgentRunner(builder, RunConfig(relay_address="relay.invalid:9", flush_timeout_seconds=1.0))
"""


def stopped_agent(scenario: str) -> tuple[list[str], str]:
    """Run an agent stopped in `scenario` in a process of its own; its stdout lines and
    stderr once it exited 0 after `serve` returned 0."""
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            STOPPED_AGENT_HEAD + scenario + STOPPED_AGENT_TAIL,
            str(CAPTURED_HOST),
        ],
        capture_output=True,
        text=True,
        timeout=EXIT_SECONDS,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[-1] == "served 0"
    return lines, done.stderr


def stop_during_the_first_cycle(
    builder: ReportBuilder, monkeypatch: pytest.MonkeyPatch, *, cycle_fails: bool
) -> tuple[InProcessRelay, AgentRunner, int]:
    """Set the stop while the first report is being built (as a SIGTERM right after start
    does), let the cycle end a moment later, and return once the agent stopped."""
    building, release = threading.Event(), threading.Event()
    build = builder.build

    def gated_build(sequence: int) -> tm.Metrics:
        building.set()
        release.wait(GATE_SECONDS)
        if cycle_fails:
            raise RuntimeError("collection broke")
        return build(sequence)

    monkeypatch.setattr(builder, "build", gated_build)

    async def scenario() -> tuple[InProcessRelay, AgentRunner, int]:
        async with InProcessRelay() as relay:
            runner = AgentRunner(builder, RunConfig(relay_address=relay.address))
            stop = asyncio.Event()
            serving = asyncio.create_task(runner.serve(stop))
            await wait_for(lambda: building.is_set() and runner.sender.connected_since is not None)
            stop.set()
            await asyncio.sleep(0.1)  # the stop is under way before the cycle ends
            release.set()
            code = await asyncio.wait_for(serving, GATE_SECONDS)
            await wait_for(lambda: relay.value("kubensage_relay_connected_agents") == 0)
            return relay, runner, code

    return asyncio.run(scenario())


def test_a_cycle_under_way_at_stop_is_delivered_and_the_stream_closes_clean(
    host_builder: ReportBuilder, monkeypatch: pytest.MonkeyPatch
) -> None:
    relay, runner, code = stop_during_the_first_cycle(host_builder, monkeypatch, cycle_fails=False)
    assert code == 0
    assert relay.store.highest_sequence("a") == 1
    assert len(runner.queue) == 0
    assert relay.value("kubensage_relay_streams_closed_total", how="clean") == 1
    assert relay.value("kubensage_relay_streams_closed_total", how="lost") == 0


def test_a_cycle_that_fails_at_stop_is_logged_and_the_stop_goes_on(
    host_builder: ReportBuilder, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    relay, _, code = stop_during_the_first_cycle(host_builder, monkeypatch, cycle_fails=True)
    assert code == 0
    assert relay.value("kubensage_relay_streams_closed_total", how="clean") == 1
    assert "the last collection cycle failed at stop" in caplog.text
    assert "collection broke" in caplog.text


def test_a_cycle_that_never_ends_neither_eats_the_flush_budget_nor_holds_the_exit() -> None:
    """One `--flush-timeout` for the whole stop: a hung cycle takes it all, so the flush
    gets none of it on top; and the process exits although the cycle's thread never ends."""
    lines, stderr = stopped_agent(HUNG_CYCLE)
    grace = float(lines[0].removeprefix("flush grace "))
    assert grace < 1.0, "the flush was given a fresh budget after the cycle used it up"
    assert "a collection cycle still under way was abandoned at stop" in stderr


def test_a_relay_name_lookup_that_never_returns_does_not_hold_the_exit() -> None:
    """The loop's own resolver runs lookups in a pool that `asyncio.run` joins with no
    limit; the agent's lookup is abandoned at stop instead."""
    stopped_agent(HUNG_LOOKUP)


def test_a_report_queued_after_the_stop_does_not_cut_the_stream() -> None:
    """A cycle abandoned at stop may still queue its report; the writer must go on closing
    cleanly rather than drop the connection under the relay. The late report is not sent
    on a stream being closed: it stays queued (spooled, with a state dir) for the next run."""

    async def scenario() -> tuple[InProcessRelay, ReportQueue]:
        async with InProcessRelay() as relay:
            queue = ReportQueue(capacity=10)
            queue.put(report(sequence=1))
            hello = tm.Hello(agent_id="agent-1", node_name="node-a")
            sender = StreamSender(relay.address, lambda: hello, queue, lambda s: None, 1 << 20)
            sending = asyncio.create_task(sender.run())
            await wait_for(lambda: len(queue) == 0)
            closing = asyncio.create_task(sender.flush_and_close(1.0))
            await asyncio.sleep(0)  # the flush's first step: the queue is empty, the stop set
            queue.put(report(sequence=2))  # before the writer has run again
            await closing
            sending.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await sending
            await wait_for(lambda: relay.value("kubensage_relay_connected_agents") == 0)
            return relay, queue

    relay, queue = asyncio.run(scenario())
    assert relay.value("kubensage_relay_streams_closed_total", how="clean") == 1
    assert relay.value("kubensage_relay_streams_closed_total", how="lost") == 0
    assert relay.store.highest_sequence("agent-1") == 1
    assert [queue.after(0).sequence] == [2]  # type: ignore[union-attr]


def test_a_report_put_from_the_collection_thread_wakes_the_writer() -> None:
    """Reports are queued by the collection thread. An asyncio.Event set from that thread
    is a race: in asyncio's debug mode it raises and leaves the waiter asleep for good, so
    the loop runs in a thread of its own that the test can give up on."""
    queued: list[int] = []

    async def scenario() -> None:
        queue = ReportQueue(capacity=10)
        waiting = asyncio.create_task(queue.wait_changed())
        await asyncio.sleep(0)
        await asyncio.to_thread(queue.put, report(sequence=1))
        await waiting
        queued.append(len(queue))

    loop_thread = threading.Thread(target=asyncio.run, args=(scenario(),), kwargs={"debug": True})
    loop_thread.daemon = True
    loop_thread.start()
    loop_thread.join(WAKE_SECONDS)
    assert queued == [1], "the waiting writer was not woken"


class SlowToStopChecks:
    """Checks whose stop takes a moment (killing and reaping what runs)."""

    def __init__(self) -> None:
        self.stopped = threading.Event()

    def start(self) -> None:
        pass

    def stop(self) -> None:
        time.sleep(0.2)
        self.stopped.set()


def test_the_checks_are_stopped_even_with_no_budget_left(
    host_builder: ReportBuilder, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """With `--flush-timeout 0` (or a budget a slow cycle used up) the checks' stop still
    gets its short allowance instead of being left behind at once."""
    checks = SlowToStopChecks()
    monkeypatch.setattr(host_builder, "checks", checks)
    runner = AgentRunner(
        host_builder, RunConfig(relay_address="127.0.0.1:9", flush_timeout_seconds=0.0)
    )

    async def scenario() -> int:
        stop = asyncio.Event()
        stop.set()
        return await runner.serve(stop)

    assert asyncio.run(scenario()) == 0
    assert checks.stopped.is_set()
    assert "left behind" not in caplog.text
