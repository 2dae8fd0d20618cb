"""Real containerd, agent, relay and Prometheus together: what a user sees through PromQL."""

from __future__ import annotations

import itertools
import shutil
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from kubensage_lab.containerd import Containerd
from kubensage_lab.cri_driver import CriDriver
from kubensage_lab.processes import (
    Prometheus,
    RelayProcess,
    Service,
    eventually,
    free_port,
    http_get,
    python_module,
)
from tests.conftest import require

INTERVAL = "1"


class Stack:
    def __init__(self, workdir: Path, cri_endpoint: str) -> None:
        self.workdir = workdir
        self.grpc_port, self.metrics_port = free_port(), free_port()
        self.cri_endpoint = cri_endpoint
        self.relay = self._relay()
        self.agent = Service(
            "agent",
            python_module(
                "kubensage_agent",
                "run",
                "--relay-address",
                f"127.0.0.1:{self.grpc_port}",
                "--cri-socket",
                cri_endpoint,
                "--interval",
                INTERVAL,
                "--node-name",
                "e2e-node",
                "--flush-timeout",
                "5",
            ),
            workdir,
        )
        self.prometheus = Prometheus(workdir, [f"127.0.0.1:{self.metrics_port}"])

    def _relay(self) -> Service:
        return RelayProcess(
            self.workdir,
            "relay",
            "--node-grace-period",
            "5",
            grpc_port=self.grpc_port,
            metrics_port=self.metrics_port,
        ).service

    @property
    def metrics_url(self) -> str:
        return f"http://127.0.0.1:{self.metrics_port}/metrics"

    def start_relay(self) -> None:
        self.relay = self._relay()
        self.relay.start().wait_http(f"http://127.0.0.1:{self.metrics_port}/healthz")

    def stop(self) -> None:
        for service in (self.agent, self.prometheus, self.relay):
            service.stop()


@pytest.fixture
def stack(containerd: Containerd, tmp_path: Path) -> Iterator[Stack]:
    require(shutil.which("prometheus") is not None, "prometheus (Debian package) for e2e tests")
    s = Stack(tmp_path, containerd.endpoint)
    try:
        s.start_relay()
        s.agent.start()
        s.prometheus.start().wait_http(f"{s.prometheus.url}/-/ready")
        yield s
    finally:
        s.stop()


def test_prometheus_sees_the_burner_at_one_core_and_series_vanish_with_the_pod(
    stack: Stack, containerd: Containerd, driver: CriDriver
) -> None:
    pod = driver.run_pod("e2e-burner", namespace="e2e")
    driver.run_container(pod, "e2e-burn", "yes > /dev/null")
    try:
        selector = 'kubensage_container_cpu_usage_seconds_total{container="e2e-burn"}'
        eventually(lambda: stack.prometheus.query(selector))
        time.sleep(12)
        result = eventually(lambda: stack.prometheus.query(f"rate({selector}[10s])"))
        cores = float(result[0]["value"][1])
        print(f"PromQL rate of the burner: {cores:.3f} cores")
        assert cores == pytest.approx(1.0, rel=0.2)
        labels = result[0]["metric"]
        assert (labels["namespace"], labels["pod"], labels["node"]) == (
            "e2e",
            "e2e-burner",
            "e2e-node",
        )
        assert stack.prometheus.query(
            'kubensage_node_pressure_cpu_waiting_seconds_total{node="e2e-node"}'
        )
        assert stack.prometheus.query(
            'kubensage_node_network_receive_bytes_total{node="e2e-node",device="lo"}'
        )
        assert stack.prometheus.query('kubensage_node_info{runtime="containerd"}')
    finally:
        driver.remove_pod(pod)
    eventually(lambda: not stack.prometheus.query(selector), timeout=30)
    assert stack.prometheus.query('kubensage_node_load1{node="e2e-node"}')


def test_relay_restart_is_a_short_gap_and_the_agent_reconnects(stack: Stack) -> None:
    eventually(lambda: stack.prometheus.query('kubensage_node_load1{node="e2e-node"}'))
    time.sleep(3)
    assert stack.relay.stop() == 0
    down_since = time.time()
    time.sleep(3)
    stack.start_relay()
    eventually(lambda: "kubensage_node_load1{" in http_get(stack.metrics_url)[1])
    received = eventually(
        lambda: stack.prometheus.query("kubensage_relay_reports_received_total > 3")
    )
    time.sleep(3)
    series = stack.prometheus.query_range(
        'kubensage_node_load1{node="e2e-node"}', down_since - 10, time.time(), 0.5
    )
    times = [float(t) for t, _ in series[0]["values"]]
    gap = max(b - a for a, b in itertools.pairwise(times))
    print(f"relay down 3s; longest gap Prometheus saw: {gap:.1f}s")
    assert gap <= 10
    assert received
    dropped = stack.prometheus.query('kubensage_agent_dropped_reports_total{node="e2e-node"}')
    assert float(dropped[-1]["value"][1]) == 0
    reconnects = stack.prometheus.query('kubensage_agent_reconnects_total{node="e2e-node"}')
    assert float(reconnects[-1]["value"][1]) >= 1


def test_agent_sigterm_exits_zero_and_relay_sees_a_clean_close(stack: Stack) -> None:
    eventually(
        lambda: (
            "stream of node e2e-node" not in stack.relay.log()
            and "connected from" in stack.relay.log()
        )
    )
    assert stack.agent.stop(signal.SIGTERM, timeout=15) == 0
    eventually(lambda: "stream of node e2e-node closed clean" in stack.relay.log(), timeout=15)
    assert "stopped; every report was acknowledged" in stack.agent.log()


def test_a_plaintext_agent_maps_neither_grpcio_nor_openssl(stack: Stack) -> None:
    """The agent's memory floor: its gRPC client is its own (kubensage_agent.wire), and
    without TLS the entry point keeps ssl out; either library mapped would cost MiBs."""
    eventually(lambda: "acknowledged the first report" in stack.agent.log())
    maps = Path(f"/proc/{stack.agent.process.pid}/maps").read_text()
    mapped = {line.split()[-1] for line in maps.splitlines() if "/" in line}
    assert not [path for path in mapped if "cygrpc" in path or "grpc" in Path(path).name]
    assert not [path for path in mapped if Path(path).name.startswith(("libssl", "_ssl"))]
    assert any("python" in Path(path).name or "libpython" in path for path in mapped)
