"""Node state: duplicates, outdated reports, disconnects and silent nodes."""

from __future__ import annotations

from relay.state.store import AGENT_MEMORY_SECONDS, NodeStore, Outcome
from tests.support.reports import report


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_duplicate_sequence_is_ignored_and_newer_replaces() -> None:
    store = NodeStore(grace_seconds=30, clock=Clock())
    assert store.accept(report(sequence=1)) is Outcome.ACCEPTED
    assert store.accept(report(sequence=1)) is Outcome.DUPLICATE
    second = report(sequence=2, pods=[])
    assert store.accept(second) is Outcome.ACCEPTED
    (view,) = store.snapshot()
    assert view.report is second


def test_older_collection_does_not_overwrite_newer_state() -> None:
    store = NodeStore(grace_seconds=30, clock=Clock())
    newer = report(sequence=2)
    older = report(sequence=3)
    older.collected_at_unix_nanos = newer.collected_at_unix_nanos - 10**9
    store.accept(newer)
    assert store.accept(older) is Outcome.OUTDATED
    assert store.snapshot()[0].report is newer


def test_closed_stream_node_disappears_after_grace() -> None:
    clock = Clock()
    store = NodeStore(grace_seconds=30, clock=clock)
    store.connected("node-a")
    store.accept(report())
    assert store.snapshot()[0].connected
    store.disconnected("node-a")
    clock.now += 29
    assert [v.connected for v in store.snapshot()] == [False]
    clock.now += 2
    assert store.snapshot() == []


def test_silent_node_disappears_after_three_intervals_plus_grace() -> None:
    clock = Clock()
    store = NodeStore(grace_seconds=5, clock=clock)
    store.connected("node-a")
    store.accept(report(interval=10))
    clock.now += 3 * 10 + 4
    assert len(store.snapshot()) == 1
    clock.now += 2
    assert store.snapshot() == []


def test_reconnect_before_grace_keeps_the_node() -> None:
    clock = Clock()
    store = NodeStore(grace_seconds=30, clock=clock)
    store.connected("node-a")
    store.accept(report())
    store.disconnected("node-a")
    clock.now += 20
    store.connected("node-a")
    clock.now += 20
    assert [v.connected for v in store.snapshot()] == [True]


def test_restarted_agent_with_new_id_starts_sequences_afresh() -> None:
    store = NodeStore(grace_seconds=30, clock=Clock())
    store.accept(report(sequence=50, agent_id="old"))
    assert store.accept(report(sequence=1, agent_id="new")) is Outcome.ACCEPTED
    assert store.snapshot()[0].agent_id == "new"


def test_sequence_memory_of_gone_agents_is_bounded() -> None:
    clock = Clock()
    store = NodeStore(grace_seconds=30, clock=clock)
    for i in range(100):
        store.accept(report(node=f"n{i}", sequence=1, agent_id=f"a{i}", interval=1))
    clock.now += AGENT_MEMORY_SECONDS + 100
    store.snapshot()
    assert store.highest_sequence("a5") == 0
    assert len(store) == 0
