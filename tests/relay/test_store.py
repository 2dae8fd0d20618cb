"""Node state: duplicates, late reports, sequences across restarts, two agents for one
node, disconnects and silent nodes."""

from __future__ import annotations

import time

import pytest

from kubensage_api.telemetry import telemetry_pb2 as tm
from relay.state.store import (
    AGENT_MEMORY_SECONDS,
    SEQUENCE_SLACK,
    NodeConflictError,
    NodeStore,
    Outcome,
    StreamClaim,
)
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


def test_older_collection_is_accepted_but_never_current() -> None:
    store = NodeStore(grace_seconds=30, clock=Clock())
    newer = report(sequence=2)
    older = report(sequence=3, agent_id="agent-2")  # another agent of the node, too
    older.collected_at_unix_nanos = newer.collected_at_unix_nanos - 10**9
    store.accept(newer)
    outcome = store.accept(older)
    assert outcome is Outcome.LATE_OLDER and outcome.accepted and outcome.late
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


# -- time: far from now is refused; stale is history, not current -----------------------


def aged(seconds: float, **kwargs: object) -> tm.Metrics:
    out = report(**kwargs)  # type: ignore[arg-type]
    out.collected_at_unix_nanos = time.time_ns() - int(seconds * 1e9)
    return out


def test_reports_from_the_future_or_too_old_are_refused_and_keep_the_sequence() -> None:
    store = NodeStore(grace_seconds=30, max_clock_skew_seconds=60, max_report_age_seconds=3600)
    assert store.accept(aged(-600, sequence=10)) is Outcome.CLOCK_SKEW
    assert store.accept(aged(7200, sequence=11)) is Outcome.TOO_OLD
    assert store.highest_sequence("agent-1") == 0
    assert store.accept(aged(-30, sequence=1)) is Outcome.ACCEPTED  # within the skew


def test_a_replayed_old_report_on_a_fresh_replica_is_not_served_as_current() -> None:
    fresh = NodeStore(grace_seconds=30, max_clock_skew_seconds=60)
    outcome = fresh.accept(aged(1800, sequence=5))  # a spooled backlog or a replay
    assert outcome is Outcome.LATE_STALE and outcome.accepted
    assert fresh.snapshot() == []
    assert fresh.accept(aged(1, sequence=6)) is Outcome.ACCEPTED
    assert [v.report.sequence for v in fresh.snapshot()] == [6]


# -- sequences that survive restarts ----------------------------------------------------


def hello(agent_id: str = "agent-1", last_sequence: int = 0, node: str = "node-a") -> tm.Hello:
    return tm.Hello(agent_id=agent_id, node_name=node, last_sequence=last_sequence)


class Ended:
    def __init__(self) -> None:
        self.reasons: list[str] = []

    def __call__(self, reason: str) -> None:
        self.reasons.append(reason)


def test_an_agent_that_lost_its_sequence_starts_a_new_epoch() -> None:
    store = NodeStore(grace_seconds=30, clock=Clock())
    first = store.open_stream(hello(last_sequence=0), Ended())
    for sequence in range(1, 51):
        store.accept(report(sequence=sequence), first.claim)
    store.close_stream(first.claim)
    again = store.open_stream(hello(last_sequence=0), Ended())  # state wiped on the node
    assert again.sequence_reset
    assert store.accept(report(sequence=1), again.claim) is Outcome.ACCEPTED
    resumed = store.open_stream(hello(last_sequence=1), Ended())  # a plain reconnect
    assert not resumed.sequence_reset
    assert store.accept(report(sequence=1), resumed.claim) is Outcome.DUPLICATE


def test_a_forged_far_future_sequence_is_refused_and_locks_nobody_out() -> None:
    clock = Clock()
    store = NodeStore(grace_seconds=30, clock=clock)
    opened = store.open_stream(hello(last_sequence=10), Ended())
    forged = report(sequence=2**63)
    assert store.accept(forged, opened.claim) is Outcome.SEQUENCE_AHEAD
    assert store.accept(report(sequence=10 + SEQUENCE_SLACK + 1), opened.claim) is (
        Outcome.SEQUENCE_AHEAD
    )
    assert store.accept(report(sequence=11), opened.claim) is Outcome.ACCEPTED
    clock.now += 3600  # a long stream may run ahead with time, at most 5 reports a second
    assert store.accept(report(sequence=11 + 3600 * 5), opened.claim) is Outcome.ACCEPTED


# -- two agents for one node -------------------------------------------------------------


def test_a_newcomer_takes_the_node_and_the_replaced_agent_cannot_take_it_back() -> None:
    clock = Clock()
    store = NodeStore(grace_seconds=30, clock=clock)
    old_ended, new_ended = Ended(), Ended()
    old = store.open_stream(hello("old-pod"), old_ended)
    store.accept(report(sequence=1, agent_id="old-pod"), old.claim)
    new = store.open_stream(hello("new-pod"), new_ended)  # a maxSurge rollout
    assert new.replaced == "old-pod" and old_ended.reasons and not new_ended.reasons
    store.close_stream(old.claim)
    store.accept(report(sequence=1, agent_id="new-pod"), new.claim)
    with pytest.raises(NodeConflictError, match="new-pod"):
        store.open_stream(hello("old-pod"), Ended())  # the old pod reconnects: refused
    assert [v.agent_id for v in store.snapshot()] == ["new-pod"]
    clock.now += 3 * 10 + 30 + 1  # the new agent fell silent: the old may take over
    back = store.open_stream(hello("old-pod"), Ended())
    assert back.replaced == "new-pod" and new_ended.reasons


def test_a_reconnect_replaces_its_own_half_open_stream_and_keeps_the_node() -> None:
    store = NodeStore(grace_seconds=30, clock=Clock())
    half_open = Ended()
    first = store.open_stream(hello(), half_open)
    second = store.open_stream(hello(), Ended())
    assert half_open.reasons and second.replaced == "agent-1"
    store.close_stream(first.claim)  # the dead stream finally closes
    assert store.accept(report(sequence=1), second.claim) is Outcome.ACCEPTED
    assert [v.connected for v in store.snapshot()] == [True]


def test_claim_sequence_ceiling_grows_with_time() -> None:
    claim = StreamClaim("node-a", "agent-1", 100, opened_at=0.0, end=Ended())
    assert claim.sequence_ceiling(0.0) == 100 + SEQUENCE_SLACK
    assert claim.sequence_ceiling(10.0) == 100 + SEQUENCE_SLACK + 50
