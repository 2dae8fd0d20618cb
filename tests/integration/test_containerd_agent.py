"""The agent against a real containerd: real pods, real containers, real CPU burn."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from kubensage_agent.collectors.errors import CollectorErrors
from kubensage_agent.collectors.node import NodeCollector
from kubensage_agent.hostfs import HostPaths
from kubensage_agent.parsers.cgroup import parse_cgroup_mounts
from kubensage_agent.parsers.pressure import parse_pressure
from kubensage_agent.report import ReportBuilder, RuntimeLink
from kubensage_api.telemetry import telemetry_pb2 as tm
from kubensage_lab.containerd import Containerd
from kubensage_lab.cri_driver import CriDriver, PodHandle

CRI_TIMEOUT = 10.0


@pytest.fixture
def burner_pod(containerd: Containerd, driver: CriDriver) -> Iterator[PodHandle]:
    pod = driver.run_pod(
        "burner", namespace="team-a", labels={"app": "burner", "tier": "batch"}, qos="burstable"
    )
    driver.run_container(pod, "burn", "yes > /dev/null")
    driver.run_container(pod, "idle", "sleep 100000")
    yield pod
    driver.remove_pod(pod)


def collect_json(endpoint: str, sample_interval: float, *flags: str) -> dict[str, Any]:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "kubensage_agent",
            "collect",
            "--format",
            "json",
            "--cri-socket",
            endpoint,
            "--sample-interval",
            str(sample_interval),
            *flags,
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return dict(json.loads(result.stdout))


def builder_for(endpoint: str) -> ReportBuilder:
    errors = CollectorErrors()
    paths = HostPaths()
    return ReportBuilder(
        agent_id="it",
        node=NodeCollector(paths, "it-node", errors),
        runtime=RuntimeLink(paths, endpoint, CRI_TIMEOUT, errors),
        errors=errors,
        cri_timeout=CRI_TIMEOUT,
    )


def containers_of(report: tm.Metrics, pod_name: str) -> dict[str, tm.Container]:
    return {c.name: c for p in report.pods if p.name == pod_name for c in p.containers}


def test_collect_reports_burner_at_one_core_and_idle_at_zero(
    containerd: Containerd, burner_pod: PodHandle
) -> None:
    time.sleep(1)
    report = collect_json(containerd.endpoint, sample_interval=3)
    assert report["runtime"]["name"] == "containerd"
    (pod,) = [p for p in report["pods"] if p["name"] == "burner"]
    assert pod["namespace"] == "team-a"
    assert pod["labels"]["app"] == "burner" and pod["labels"]["tier"] == "batch"
    assert pod["state"] == "POD_STATE_READY"
    containers = {c["name"]: c for c in pod["containers"]}
    assert set(containers) == {"burn", "idle"}
    burn, idle = containers["burn"], containers["idle"]
    idle_cores = idle["cpu"].get("usage_cores", 0.0)
    print(f"burner {burn['cpu']['usage_cores']:.3f} cores, idle {idle_cores:.4f}")
    assert burn["cpu"]["usage_cores"] == pytest.approx(1.0, rel=0.2)
    # by default from the cgroup, the rate computed over the two samples
    assert (burn["cpu"]["source"], burn["cpu"]["rate_source"]) == ("cgroup", "computed")
    assert idle_cores < 0.05
    assert burn["state"] == "CONTAINER_STATE_RUNNING"
    assert burn["image"].endswith("kubensage/busybox:test")
    assert int(burn["memory"]["working_set_bytes"]) > 0
    assert int(burn["writable_layer"]["used_bytes"]) > 0  # fetched on the second sample
    assert report["image_filesystems"]


def test_runtime_rate_when_the_runtime_is_asked_every_cycle(
    containerd: Containerd, burner_pod: PodHandle
) -> None:
    report = collect_json(
        containerd.endpoint, 3, "--cri-stats-interval", "0", "--prefer-source", "cri"
    )
    (pod,) = [p for p in report["pods"] if p["name"] == "burner"]
    burn = next(c for c in pod["containers"] if c["name"] == "burn")
    # containerd computes usage_nano_cores from its previous ListContainerStats sample
    assert (burn["cpu"]["source"], burn["cpu"]["rate_source"]) == ("cri", "runtime")
    assert burn["cpu"]["usage_cores"] == pytest.approx(1.0, rel=0.2)


def test_container_psi_comes_from_its_own_cgroup_v2_directory(
    containerd: Containerd, burner_pod: PodHandle
) -> None:
    """PSI is read where the runtime's cgroupsPath leads in the cgroup2 mount (on this
    hybrid host runc puts each container there too), never the hierarchy root's."""
    unified = [
        m for m in parse_cgroup_mounts(Path("/proc/1/mountinfo").read_text()) if m.version == 2
    ]
    builder = builder_for(containerd.endpoint)
    first = containers_of(builder.build(1), "burner")["burn"]
    own = Path(f"{unified[0].mountpoint}{first.cgroup_path}/cpu.pressure") if unified else None
    before = parse_pressure(own.read_text()).some if own and own.exists() else None
    burn = containers_of(builder.build(2), "burner")["burn"]
    print(f"cgroup2 at {unified[0].mountpoint if unified else None}, container file {own}")
    if before is None:
        assert len(burn.pressure) == 0  # a v1-only container has no PSI, not the root's
        return
    after = parse_pressure(own.read_text()).some  # type: ignore[union-attr]
    assert after is not None
    cpu = next(p for p in burn.pressure if p.resource == "cpu")
    assert before.total_seconds <= cpu.some.total_seconds <= after.total_seconds
    assert {p.resource for p in burn.pressure} == {"cpu", "memory", "io"}


def test_stopped_container_is_exited_and_removed_pod_disappears(
    containerd: Containerd, driver: CriDriver
) -> None:
    pod = driver.run_pod("shortlived")
    worker = driver.run_container(pod, "worker", "sleep 100000")
    builder = builder_for(containerd.endpoint)
    assert containers_of(builder.build(1), "shortlived")["worker"].state == (
        tm.CONTAINER_STATE_RUNNING
    )
    driver.stop_container(worker)
    stopped = containers_of(builder.build(2), "shortlived")["worker"]
    assert stopped.state == tm.CONTAINER_STATE_EXITED
    assert stopped.finished_at_unix_nanos > stopped.started_at_unix_nanos > 0
    driver.remove_pod(pod)
    assert "shortlived" not in {p.name for p in builder.build(3).pods}


def test_containerd_restart_under_a_running_loop(
    containerd: Containerd, burner_pod: PodHandle
) -> None:
    builder = builder_for(containerd.endpoint)
    reports: list[tm.Metrics] = []
    stop = threading.Event()

    def loop() -> None:
        sequence = 0
        while not stop.is_set() and sequence < 400:
            sequence += 1
            reports.append(builder.build(sequence))
            stop.wait(0.25)

    builder.build(0)
    collector_before = builder.runtime.collector if builder.runtime else None
    assert collector_before is not None
    thread = threading.Thread(target=loop, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 20
        while not any(containers_of(r, "burner") for r in reports) and time.monotonic() < deadline:
            time.sleep(0.1)
        before = len(reports)
        containerd.restart()
        deadline = time.monotonic() + 60
        recovered = False
        while time.monotonic() < deadline and not recovered:
            time.sleep(0.25)
            recovered = any("burn" in containers_of(r, "burner") for r in reports[before + 1 :])
    finally:
        stop.set()
        thread.join(timeout=30)
    after = reports[before:]
    assert recovered, "container data did not come back after containerd restarted"
    assert all(r.node.cpu_seconds_by_mode["user"] > 0 for r in after)
    # the same client reconnected by itself: no rediscovery, no new agent
    assert builder.runtime is not None and builder.runtime.collector is collector_before
