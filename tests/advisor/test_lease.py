"""Leader election against the fake API server's Lease: races, expiry, deadlines."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from kubernetes import client

from advisor.lease import Attempt, LeaderElector, LeaseConfig
from kubensage_common.kubeclient import load_api_client
from tests.support.fake_kube import FakeKubeApi


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def api(tmp_path: Path) -> Iterator[tuple[FakeKubeApi, client.CoordinationV1Api]]:
    fake = FakeKubeApi().start()
    path = fake.write_kubeconfig(tmp_path / "kubeconfig")
    loaded = load_api_client(str(path))
    assert loaded is not None
    yield fake, client.CoordinationV1Api(loaded[0])
    fake.stop()


CONFIG = {
    "namespace": "ns",
    "name": "advisor",
    "lease_duration": 15,
    "renew_deadline": 10,
    "retry_period": 2,
}


@pytest.fixture
def pair(
    api: tuple[FakeKubeApi, client.CoordinationV1Api],
) -> tuple[LeaderElector, LeaderElector, Clock]:
    """Two replicas, "a" and "b", on one hand-driven clock."""
    clock = Clock()
    return elector(api[1], "a", clock), elector(api[1], "b", clock), clock


def elector(
    coordination: client.CoordinationV1Api, identity: str, clock: Clock, **overrides: float
) -> LeaderElector:
    return LeaderElector(
        coordination, LeaseConfig(identity=identity, **{**CONFIG, **overrides}), clock=clock
    )


def test_first_creates_the_lease_second_waits_until_it_expires(
    api: tuple[FakeKubeApi, client.CoordinationV1Api],
    pair: tuple[LeaderElector, LeaderElector, Clock],
) -> None:
    fake = api[0]
    a, b, clock = pair
    a.step()
    b.step()
    assert (a.is_leader, b.is_leader) == (True, False)
    lease = fake.lease("ns", "advisor")
    assert lease is not None
    assert lease["spec"]["holderIdentity"] == "a" and lease["spec"]["leaseTransitions"] == 0
    clock.now += 14  # a stops renewing; not yet expired as b sees it
    b.step()
    assert not b.is_leader
    clock.now += 2
    b.step()
    assert b.is_leader
    taken = fake.lease("ns", "advisor")
    assert taken is not None
    assert taken["spec"]["holderIdentity"] == "b" and taken["spec"]["leaseTransitions"] == 1
    a.step()  # the old leader sees another holder and steps down at once
    assert not a.is_leader


def test_renewals_keep_the_lease_from_expiring(
    pair: tuple[LeaderElector, LeaderElector, Clock],
) -> None:
    a, b, clock = pair
    a.step()
    for _ in range(20):  # 40 s of renewals every 2 s, far past one lease duration
        clock.now += 2
        a.step()
        b.step()
        assert a.is_leader and not b.is_leader


def test_racing_writers_conflict_and_exactly_one_wins(
    api: tuple[FakeKubeApi, client.CoordinationV1Api],
) -> None:
    _fake, coordination = api
    clock = Clock()
    electors = [elector(coordination, f"r{i}", clock) for i in range(4)]
    results: list[Attempt] = []
    barrier = threading.Barrier(len(electors))

    def attempt(e: LeaderElector) -> None:
        barrier.wait(timeout=10)
        results.append(e._attempt())

    threads = [threading.Thread(target=attempt, args=(e,)) for e in electors]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert results.count(Attempt.HELD) == 1, results


def test_a_hung_api_server_costs_the_leader_its_leadership_within_the_deadline(
    api: tuple[FakeKubeApi, client.CoordinationV1Api],
) -> None:
    fake, coordination = api
    clock = Clock()
    a = elector(coordination, "a", clock, lease_duration=3, renew_deadline=1, retry_period=0.5)
    a.step()
    assert a.is_leader
    fake.stall_leases.set()
    try:
        clock.now += 0.5
        a.step()  # the call gives up at its deadline; still inside the renew deadline
        assert a.is_leader and a.errors == 1
        clock.now += 0.6
        a.step()
        assert not a.is_leader and a.errors == 2
    finally:
        fake.stall_leases.clear()


def test_release_hands_the_lease_over_at_once(
    pair: tuple[LeaderElector, LeaderElector, Clock],
) -> None:
    a, b, _clock = pair
    a.step()
    b.step()
    a.release()
    assert not a.is_leader
    b.step()  # no waiting for expiry
    assert b.is_leader


def test_inconsistent_timings_are_refused() -> None:
    with pytest.raises(ValueError, match="retry period < renew deadline < lease duration"):
        LeaseConfig(namespace="ns", name="x", identity="a", lease_duration=5, renew_deadline=10)
