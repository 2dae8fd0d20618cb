"""Fault tests with real processes: relay outages and an agent killed mid-outage lose nothing."""

from __future__ import annotations

import re
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from kubensage_lab.processes import (
    RelayProcess,
    Service,
    agent_service,
    eventually,
    free_port,
    scrape_sample,
)

OUTAGE_SECONDS = 30


class Relay(RelayProcess):
    """Both relays of a test listen on the same ports, as one relay restarted would."""

    def __init__(self, workdir: Path, grpc_port: int, metrics_port: int, name: str) -> None:
        super().__init__(
            workdir,
            name,
            "--node-grace-period",
            "120",
            grpc_port=grpc_port,
            metrics_port=metrics_port,
        )

    def value(self, name: str, labels: str = "") -> float:
        return scrape_sample(self.metrics_url, name, labels) or 0.0

    def last_sequence_of_closed_stream(self) -> int:
        """The node leaves /metrics when its stream closes cleanly; the log keeps its last."""
        found = re.findall(
            r"closed clean after \d+ accepted reports \(highest sequence (\d+)\)",
            self.service.log(),
        )
        assert found, self.service.log()
        return int(found[-1])

    def accepted_at_stop(self) -> int:
        assert self.service.stop() == 0
        found = re.search(r"relay stopped: (\d+) reports accepted", self.service.log())
        assert found, self.service.log()
        return int(found.group(1))


@pytest.fixture
def ports() -> Iterator[tuple[int, int]]:
    yield free_port(), free_port()


def agent(workdir: Path, grpc_port: int, state_dir: Path, name: str = "agent") -> Service:
    return agent_service(
        workdir,
        "fault-node",
        f"127.0.0.1:{grpc_port}",
        *("--interval", "1", "--spool", "--flush-timeout", "10"),
        *("--cri-socket", f"unix://{workdir}/no-runtime.sock"),
        name=name,
        state_dir=state_dir,
    )


NODE = '{node="fault-node"}'


def test_relay_down_for_thirty_seconds_every_report_accepted_once(
    tmp_path: Path, ports: tuple[int, int]
) -> None:
    grpc_port, metrics_port = ports
    first = Relay(tmp_path, grpc_port, metrics_port, "relay-a").start()
    the_agent = agent(tmp_path, grpc_port, tmp_path / "state").start()
    second = None
    try:
        eventually(lambda: first.value("kubensage_relay_node_last_sequence", NODE) >= 3)
        accepted_by_first = first.accepted_at_stop()
        time.sleep(OUTAGE_SECONDS)
        second = Relay(tmp_path, grpc_port, metrics_port, "relay-b").start()
        eventually(lambda: second.value("kubensage_relay_reports_received_total") >= 5)
        assert the_agent.stop() == 0  # SIGTERM: flushes the rest
        last = second.last_sequence_of_closed_stream()
        accepted_by_second = int(second.value("kubensage_relay_reports_received_total"))
        duplicates = second.value("kubensage_relay_reports_rejected_total", '{reason="duplicate"}')
    finally:
        the_agent.stop()
        if second is not None:
            second.service.stop()
        first.service.stop()
    print(
        f"produced {last}: relay A accepted {accepted_by_first}, relay B {accepted_by_second} "
        f"after a {OUTAGE_SECONDS}s outage"
    )
    assert last >= OUTAGE_SECONDS  # the agent kept collecting through the outage
    assert duplicates == 0
    # every sequence 1..last reached a relay; only a report accepted by A whose ack was cut
    # off by A's shutdown can reach B as well
    assert accepted_by_first + accepted_by_second - last in (0, 1)


def test_agent_killed_while_relay_down_delivers_its_spool_after_restart(
    tmp_path: Path, ports: tuple[int, int]
) -> None:
    grpc_port, metrics_port = ports
    state = tmp_path / "state"
    first = Relay(tmp_path, grpc_port, metrics_port, "relay-a").start()
    killed = agent(tmp_path, grpc_port, state, "agent-1").start()
    restarted = agent(tmp_path, grpc_port, state, "agent-2")
    second = None
    try:
        eventually(lambda: first.value("kubensage_relay_node_last_sequence", NODE) >= 2)
        first.accepted_at_stop()
        spool = state / "spool"
        eventually(lambda: len(list(spool.glob("*.report"))) >= 5, timeout=30)
        killed.stop(signal.SIGKILL)
        spooled = sorted(int(p.name.split(".")[0]) for p in spool.glob("*.report"))
        reserved = int((state / "sequence").read_text())
        agent_id = (state / "agent-id").read_text().strip()
        second = Relay(tmp_path, grpc_port, metrics_port, "relay-b").start()
        restarted.start()
        eventually(lambda: second.value("kubensage_relay_node_last_sequence", NODE) > reserved)
        eventually(lambda: not list(spool.glob("*.report")), timeout=30)
        assert restarted.stop() == 0
        last = second.last_sequence_of_closed_stream()
        accepted = int(second.value("kubensage_relay_reports_received_total"))
    finally:
        restarted.stop()
        killed.stop()
        if second is not None:
            second.service.stop()
        first.service.stop()
    new_reports = last - reserved  # the restarted agent continues after its reserved block
    print(
        f"{len(spooled)} reports spooled before SIGKILL, {new_reports} produced after restart, "
        f"{accepted} accepted"
    )
    assert f"{len(spooled)} unacknowledged reports recovered from the spool" in restarted.log()
    assert second is not None
    assert f"agent {agent_id} on node fault-node connected" in second.service.log()
    assert accepted == len(spooled) + new_reports
