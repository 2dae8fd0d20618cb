"""Hostile clients against a real relay process over real gRPC, next to a well-behaved
agent on another node whose acknowledgements and series must not suffer."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from kubensage_lab.processes import RelayProcess, memory_kib
from tests.support.hostile import Answer, GoodAgent, sample, scrape

# The relay's peak resident memory under every attack below, against the manifest's 1 GiB.
PEAK_RSS_BOUND_MIB = 300
ACK_WAIT_SECONDS = 60.0  # how long a good agent may take to get its acks under attack
RELAY_ARGS = ("--no-kube-enrichment", "--node-grace-period", "120", "--auth-reload-interval", "1")


def start_relay(workdir: Path, name: str, *extra: str) -> RelayProcess:
    return RelayProcess(workdir, name, *RELAY_ARGS, *extra).start()


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("hostile")


def good_series(relay: RelayProcess, agent: GoodAgent) -> float | None:
    """The good node's CPU counter as the relay serves it."""
    return sample(
        scrape(relay.metrics_url),
        "kubensage_node_cpu_seconds_total",
        [f'node="{agent.node}"', 'mode="user"'],
    )


def assert_unharmed(relay: RelayProcess, agent: GoodAgent) -> None:
    """The good agent is acknowledged again, its newest counter is served, and the relay's
    peak memory stayed within the bound."""
    acked = agent.wait_for_acks(3)
    served = good_series(relay, agent)
    assert served is not None and served >= agent.counter_base + acked - 3, (served, acked)
    peak = memory_kib(relay.pid)["VmHWM"]
    print(f"relay peak RSS so far: {peak / 1024:.0f} MiB")
    assert peak < PEAK_RSS_BOUND_MIB * 1024, f"relay peak RSS {peak / 1024:.0f} MiB"


def during_attack(agent: GoodAgent, attack_once: Callable[[], Answer], acks: int = 5) -> Answer:
    """Repeat an attack in a thread until the good agent got `acks` more acknowledgements;
    the attack must still be running when they arrive. Returns the attack's last answer.
    The attack is bounded by time, beyond the wait for the acks: a bound by count ends a
    quickly refused attack before a slow machine has acknowledged anything."""
    answers: list[Answer] = []
    stop = threading.Event()
    ends = time.monotonic() + ACK_WAIT_SECONDS + 30

    def repeat() -> None:
        while not stop.is_set() and time.monotonic() < ends:
            answers[:] = [attack_once()]  # the last answer only: memory stays bounded

    attacker = threading.Thread(target=repeat, daemon=True)
    attacker.start()
    try:
        agent.wait_for_acks(acks, ACK_WAIT_SECONDS)
        assert attacker.is_alive(), "the attack ended before the good agent was acknowledged"
    finally:
        stop.set()
        attacker.join(timeout=120)
    assert answers, "the attack never completed a round"
    return answers[-1]


@pytest.fixture(scope="module")
def plain_relay(workdir: Path) -> Iterator[RelayProcess]:
    relay = start_relay(workdir, "relay-plain")
    try:
        yield relay
    finally:
        relay.stop()


@pytest.fixture(scope="module")
def good_agent(plain_relay: RelayProcess) -> Iterator[GoodAgent]:
    with GoodAgent(plain_relay.address) as agent:
        agent.wait_for_acks(3)
        yield agent
