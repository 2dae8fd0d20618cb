"""Check scripts end to end: a real agent runs them, a real relay exposes them, a real
Prometheus scrapes the relay; scripts come and go while the agent runs, and the relay
switches one off."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from kubensage_lab.processes import Prometheus, RelayProcess, agent_service, eventually
from tests.conftest import require
from tests.support.checks import CheckDir

NODE = "checks-node"
STATES = {"ok": 0, "warning": 1, "critical": 2, "unknown": 3}


class Stack:
    def __init__(self, workdir: Path, checks: CheckDir) -> None:
        self.workdir = workdir
        self.checks = checks
        self.relay = RelayProcess(
            workdir, "relay", "--no-kube-enrichment", "--node-grace-period", "5"
        )
        self.agent = agent_service(
            workdir,
            NODE,
            self.relay.address,
            "--cri-socket",
            f"unix://{workdir}/no-runtime.sock",
            "--interval",
            "1",
            "--checks-dir",
            str(checks.path),
            "--checks-interval",
            "2",
            name="agent",
        )
        self.prometheus = Prometheus(workdir, [f"127.0.0.1:{self.relay.http}"])

    def restart_relay(self, *extra: str) -> None:
        self.relay.stop()
        self.relay = RelayProcess(
            self.workdir,
            "relay",
            "--no-kube-enrichment",
            "--node-grace-period",
            "5",
            *extra,
            grpc_port=self.relay.grpc,
            metrics_port=self.relay.http,
        ).start()

    def state_of(self, check: str) -> str | None:
        """The state whose kubensage_check_status series is 1, as Prometheus has it now."""
        result = self.prometheus.query(
            f'kubensage_check_status{{node="{NODE}",check="{check}"}} == 1'
        )
        return result[0]["metric"]["state"] if len(result) == 1 else None

    def value(self, promql: str) -> float | None:
        result = self.prometheus.query(promql)
        return float(result[0]["value"][1]) if result else None


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[Stack]:
    require(shutil.which("prometheus") is not None, "prometheus (Debian package) for e2e tests")
    require(os.geteuid() == 0, "checks are root-owned scripts the agent runs as nobody")
    checks = CheckDir()
    for state, code in STATES.items():
        checks.script(f"is-{state}", f"echo {state}; exit {code}")
    checks.script("hang", "sleep 1000", manifest="timeout: 2\n")
    checks.script("flood", "head -c 100000000 /dev/zero | tr '\\0' x", manifest="timeout: 30\n")
    checks.script(
        "bomb",
        "bomb() { bomb | bomb & }; bomb; sleep 1000",
        shell="/bin/bash",
        manifest="timeout: 2\ninterval: 30\n",
    )
    checks.script("writable", "exit 0", mode=0o775)
    s = Stack(tmp_path, checks)
    try:
        s.relay.start()
        s.agent.start()
        s.prometheus.start().wait_http(f"{s.prometheus.url}/-/ready")
        yield s
    finally:
        for service in (s.agent, s.prometheus):
            service.stop()
        s.relay.stop()
        checks.cleanup()


def test_every_check_state_reaches_prometheus_and_follows_the_directory_and_the_relay(
    stack: Stack,
) -> None:
    for state in STATES:
        assert eventually(lambda state=state: stack.state_of(f"is-{state}"), timeout=60) == state
    for misbehaving in ("hang", "flood", "bomb", "writable"):
        assert eventually(lambda m=misbehaving: stack.state_of(m), timeout=60) == "unknown"
    assert eventually(
        lambda: stack.value(f'kubensage_agent_check_errors_total{{node="{NODE}"}} > 0'), timeout=30
    )
    assert "check writable: refused:" in stack.agent.log()
    assert "is writable by group or others (mode 0775)" in stack.agent.log()
    assert "fork() handlers" not in stack.agent.log()  # gRPC stays out of the check forks
    hang = stack.value(f'kubensage_check_duration_seconds{{node="{NODE}",check="hang"}}')
    assert hang is not None and hang >= 2
    assert stack.value(f'kubensage_check_runs_total{{node="{NODE}",check="is-ok",result="ok"}} > 0')
    assert stack.value(
        f'kubensage_check_last_run_timestamp_seconds{{node="{NODE}",check="is-ok"}} > 1.7e9'
    )
    # the agent still reports every second: no check holds up a cycle
    assert stack.value(f'kubensage_agent_interval_seconds{{node="{NODE}"}}') == 1

    stack.checks.script("late", "echo late; exit 1")
    assert eventually(lambda: stack.state_of("late"), timeout=60) == "warning"
    (stack.checks.path / "late").unlink()
    eventually(lambda: stack.state_of("late") is None, timeout=60)

    stack.restart_relay("--check-override", "is-ok:enabled=false")
    eventually(lambda: "relay check overrides now" in stack.agent.log(), timeout=90)
    critical_runs = (
        f'kubensage_check_runs_total{{node="{NODE}",check="is-critical",result="critical"}}'
    )
    assert eventually(lambda: stack.state_of("is-critical"), timeout=60) == "critical"
    eventually(lambda: stack.state_of("is-ok") is None, timeout=60)
    runs = eventually(lambda: stack.value(critical_runs), timeout=30)
    eventually(lambda: (stack.value(critical_runs) or 0) >= runs + 2, timeout=60)
    assert stack.state_of("is-ok") is None  # stays off while the others keep running
    assert stack.state_of("is-warning") == "warning"
