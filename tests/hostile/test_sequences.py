"""Sequence numbers and collection times an attacker (or an unlucky agent) gets wrong:
a forged far-future sequence, a replay, two agents for one node, a restart that lost
its sequence. None of them locks an agent out, flaps a node's series, or serves an old
report as current."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from kubensage_lab.processes import RelayProcess, eventually
from tests.hostile.conftest import assert_unharmed, good_series, start_relay
from tests.support.hostile import (
    GoodAgent,
    attack,
    hello_bytes,
    node_lines,
    report_bytes,
    sample,
    scrape,
)
from tests.support.reports import report

FAR_FUTURE = 2**62


@pytest.mark.parametrize("hello_claims", [0, FAR_FUTURE])
def test_a_forged_far_future_sequence_locks_nobody_out(
    plain_relay: RelayProcess, good_agent: GoodAgent, hello_claims: int
) -> None:
    """Whether the forged hello claims a small or a huge last_sequence, the real agent
    goes on being acknowledged and served."""
    forged = report(node=good_agent.node, agent_id=good_agent.agent_id, sequence=FAR_FUTURE)
    answer = attack(
        plain_relay.address,
        [
            hello_bytes(good_agent.node, good_agent.agent_id, last_sequence=hello_claims),
            report_bytes(forged),
        ],
    )
    assert answer.acks == [FAR_FUTURE]  # acknowledged either way: nothing to resend
    if hello_claims == 0:
        rejected = sample(
            scrape(plain_relay.metrics_url),
            "kubensage_relay_reports_rejected_total",
            ['reason="sequence_ahead"'],
        )
        assert rejected is not None and rejected >= 1
    assert_unharmed(plain_relay, good_agent)
    assert_unharmed(plain_relay, good_agent)  # and again: no lockout after a reconnect


def test_a_replayed_old_report_is_never_served_as_current(
    plain_relay: RelayProcess, workdir: Path
) -> None:
    captured = report(node="replayed-node", agent_id="agent-r", sequence=7)
    captured.collected_at_unix_nanos = time.time_ns() - 600 * 10**9  # ten minutes ago
    replica = start_relay(workdir, "relay-replica")
    try:
        answer = attack(
            replica.address, [hello_bytes("replayed-node", "agent-r", 7), report_bytes(captured)]
        )
        assert answer.code == grpc.StatusCode.OK and answer.acks == [7]
        exposition = scrape(replica.metrics_url)
        assert node_lines(exposition, "replayed-node") == []  # accepted, not current
        late = sample(exposition, "kubensage_relay_reports_late_total", ['reason="stale"'])
        assert late == 1
    finally:
        replica.stop()
    # on a replica that shows the node: an older report is late even with a new sequence
    current = report(node="replayed-node", agent_id="agent-r", sequence=20)
    older = report(node="replayed-node", agent_id="agent-r", sequence=21)
    older.collected_at_unix_nanos = current.collected_at_unix_nanos - 5 * 10**9
    older.node.load.load1 = 99.0
    attack(
        plain_relay.address,
        [hello_bytes("replayed-node", "agent-r", 21), report_bytes(current), report_bytes(older)],
    )
    exposition = scrape(plain_relay.metrics_url)
    assert sample(exposition, "kubensage_node_load1", ['node="replayed-node"']) == 0.5
    late = sample(exposition, "kubensage_relay_reports_late_total", ['reason="older_than_current"'])
    assert late is not None and late >= 1


@pytest.fixture
def old_pod(plain_relay: RelayProcess) -> Iterator[GoodAgent]:
    with GoodAgent(
        plain_relay.address, "shared-node", agent_id="pod-old", counter_base=1_000_000
    ) as agent:
        agent.wait_for_acks(3)
        yield agent


def test_two_agents_for_one_node_hand_over_once_and_never_flap(
    plain_relay: RelayProcess, old_pod: GoodAgent
) -> None:
    """A DaemonSet rollout with maxSurge: the new pod takes the node over; the old one,
    still running, is refused when it reconnects, so the series do not alternate."""
    with GoodAgent(plain_relay.address, "shared-node", agent_id="pod-new") as new_pod:
        new_pod.wait_for_acks(3)
        served = []
        for _ in range(8):
            new_pod.wait_for_acks(1)
            value = good_series(plain_relay, new_pod)
            assert value is not None
            served.append(value)
        old_acked = old_pod.acked
        new_pod.wait_for_acks(5)
        assert old_pod.acked == old_acked  # refused while the new pod reports
    assert all(v < 1_000_000 for v in served), served  # only the new pod's counter
    assert served == sorted(served), served  # never reset by the old pod's reports
    exposition = scrape(plain_relay.metrics_url)
    replaced = sample(exposition, "kubensage_relay_node_takeovers_total", ['outcome="replaced"'])
    refused = sample(exposition, "kubensage_relay_node_takeovers_total", ['outcome="refused"'])
    assert replaced is not None and replaced >= 1
    assert refused is not None and refused >= 1


def test_an_agent_that_lost_its_sequence_is_accepted_again_at_once(
    plain_relay: RelayProcess,
) -> None:
    with GoodAgent(plain_relay.address, "restart-node", counter_base=5000) as before:
        before.wait_for_acks(10)
    # same id, state gone: numbering starts again at 1
    with GoodAgent(plain_relay.address, "restart-node", counter_base=0) as after:
        after.wait_for_acks(3)
        eventually(lambda: (good_series(plain_relay, after) or 5000) < 5000, timeout=30)
    resets = sample(scrape(plain_relay.metrics_url), "kubensage_relay_sequence_resets_total", [])
    assert resets is not None and resets >= 1
