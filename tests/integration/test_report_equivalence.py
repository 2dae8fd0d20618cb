"""Reports built the old way and the new way, on the same real containerd, at the same
moments: nothing the relay received before is lost or changed.

The old way (stats_policy.LEGACY) makes every CRI stats call every cycle and takes the
runtime's figures first; the new way (the default) reads CPU, memory and pod network
itself and asks the runtime only for what only it knows, at a slow cadence. Every field
the old report carries must be in the new one. Identities, limits, states, the writable
layer and every figure that does not move are compared exactly; figures that move while
the two reports are built one after the other are allowed what they can move in that gap
(each tolerance below says why). Fields that name a figure's source say where it came
from, so their values differ by design (they must still be present); containerd's
`available_bytes` of 0 for a container without a memory limit is its stand-in for "no
limit", which the new report leaves out rather than send a zero that is not a figure.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from kubensage_agent.collectors.errors import CollectorErrors
from kubensage_agent.collectors.node import NodeCollector
from kubensage_agent.collectors.stats_policy import LEGACY, StatsPolicy
from kubensage_agent.hostfs import HostPaths
from kubensage_agent.report import ReportBuilder, RuntimeLink
from kubensage_api.telemetry import telemetry_pb2 as tm
from kubensage_lab.containerd import Containerd
from kubensage_lab.cri_driver import CriDriver, PodHandle, Resources
from kubensage_lab.processes import eventually
from tests.support.flatten import flatten

MIB = 1024 * 1024
CRI_TIMEOUT = 30.0
WRITTEN_BYTES = 4 * MIB
CPUS = os.cpu_count() or 1
# the agent's own figures and the report's envelope: they describe the agent, not the node
NOT_COMPARED = ("agent_id", "sequence", "collected_at_unix_nanos", "health.")
# where a figure came from: differs by design between the two ways
SOURCE_FIELDS = ("cpu.source", "cpu.rate_source", "memory.source", "network_source")
Rule = Callable[[Any, Any, float], bool]


def _within_cpu(old: float, new: float, gap: float) -> bool:
    """CPU seconds: at most every CPU of the node busy for the gap, plus clock ticks."""
    return abs(new - old) <= CPUS * gap + 0.05


def _within_rate(old: float, new: float, gap: float) -> bool:
    """A rate in cores: containerd's is over the window between its own two last stats
    calls, the new one over the agent's last two samples; a steady container (idle, or
    busy at its quota) has the same rate over both, up to scheduling noise."""
    return abs(new - old) <= 0.15 + 0.2 * abs(old)


def _within_periods(old: int, new: int, gap: float) -> bool:
    """CFS periods of 100 ms, one each per period that passed in the gap."""
    return abs(new - old) <= gap / 0.1 + 2


def _within_bytes(old: int, new: int, gap: float) -> bool:
    """Memory in use of an idle or steadily busy container: page-cache and allocator
    noise of up to 1 MiB + 2%."""
    return abs(new - old) <= MIB + 0.02 * abs(old)


def _within_faults(old: int, new: int, gap: float) -> bool:
    """Page faults: a running shell or `yes` faults a few hundred times per second at most."""
    return abs(new - old) <= 1000 * (gap + 1)


def _within_io(old: int, new: int, gap: float) -> bool:
    """Block I/O of the writer: writeback of its file may land between the two reads."""
    return abs(new - old) <= WRITTEN_BYTES + 0.1 * abs(old) + 100


def _within_stall(old: float, new: float, gap: float) -> bool:
    """PSI stall time: at most the wall time that passed (it counts time, not CPUs)."""
    return abs(new - old) <= gap + 0.05


# PSI averages in percent: the kernel updates them every 2 s, and one update moves a
# window's average by at most 1 - e^(-2 s / window) of the distance to 0 or 100
PSI_AVERAGE_STEP = {"avg10": 18.2, "avg60": 3.3, "avg300": 0.7}


def _rule(path: str) -> Rule | None:
    """How much a numeric field may move between the two reports; None: not at all."""
    leaf = path.rsplit(".", 1)[-1]
    if ".block_io[" in path or path.startswith("image_filesystems["):
        return _within_io  # the snapshotter's usage counts the writer's layer too
    if leaf == "usage_cores":
        return _within_rate
    if leaf == "total_seconds":
        return _within_stall
    if leaf in PSI_AVERAGE_STEP:
        step = PSI_AVERAGE_STEP[leaf]
        return lambda old, new, gap: abs(new - old) <= step * (gap // 2 + 1)
    if leaf.endswith("_seconds_total"):
        return _within_cpu
    if leaf.endswith("periods_total"):
        return _within_periods
    if leaf in {"page_faults", "major_page_faults"}:
        return _within_faults
    if leaf.endswith("_bytes") and ".writable_layer." not in path:
        return _within_bytes  # memory and swap in use
    return None


def _builder(endpoint: str, policy: StatsPolicy) -> ReportBuilder:
    errors = CollectorErrors()
    return ReportBuilder(
        agent_id=f"equivalence-{policy.prefer}",
        node=NodeCollector(HostPaths(), "equivalence-node", errors),
        runtime=RuntimeLink(HostPaths(), endpoint, CRI_TIMEOUT, errors, policy),
        errors=errors,
        cri_timeout=CRI_TIMEOUT,
    )


@pytest.fixture
def workload(driver: CriDriver) -> Iterator[list[PodHandle]]:
    """Pods as the kubelet makes them: idle without limits (and one that exited), busy at
    its CPU quota, and one that wrote a file into its writable layer."""
    pods = []
    try:
        idle = driver.run_pod("eq-idle", namespace="equivalence", qos="besteffort")
        pods.append(idle)
        driver.run_container(idle, "sleeper", "sleep 2147483647")
        driver.run_container(idle, "done", "exit 3")
        busy = driver.run_pod("eq-busy", namespace="equivalence", qos="burstable")
        pods.append(busy)
        driver.run_container(
            busy,
            "spin",
            "yes > /dev/null",
            Resources(cpu_request=0.25, cpu_limit=0.5, memory_limit=64 * MIB),
        )
        writer = driver.run_pod("eq-writer", namespace="equivalence", qos="guaranteed")
        pods.append(writer)
        driver.run_container(
            writer,
            "writer",
            f"dd if=/dev/zero of=/written bs={MIB} count={WRITTEN_BYTES // MIB} "
            "&& sync && sleep 2147483647",
            Resources(cpu_request=0.2, cpu_limit=0.2, memory_limit=32 * MIB),
        )
        yield pods
    finally:
        for pod in pods:
            driver.remove_pod(pod)


def _writer_written(builder: ReportBuilder) -> bool:
    report = builder.build(1)
    return any(
        c.writable_layer.used_bytes >= WRITTEN_BYTES
        for p in report.pods
        if p.name == "eq-writer"
        for c in p.containers
    )


def _ours(report: tm.Metrics) -> tm.Metrics:
    """The report with only this test's pods (the session's containerd runs others)."""
    kept = [p for p in report.pods if p.namespace == "equivalence"]
    del report.pods[:]
    report.pods.extend(kept)
    return report


def test_new_report_carries_every_old_field_with_the_same_value(
    containerd: Containerd, workload: list[PodHandle]
) -> None:
    old_way, new_way = (
        _builder(containerd.endpoint, LEGACY),
        _builder(containerd.endpoint, StatsPolicy()),
    )
    try:
        # containerd walks writable layers every second here: wait until the write shows
        eventually(lambda: _writer_written(old_way), timeout=60)
        time.sleep(1.5)  # one more walk, so both ways see the same settled figure
        for sequence in (2, 3):  # rates need two samples; the new way's second cycle
            old_way.build(sequence)  # fetches the writable layer
            new_way.build(sequence)
            time.sleep(1.0)
        old = _ours(old_way.build(4))
        new = _ours(new_way.build(4))
    finally:
        for builder in (old_way, new_way):
            if builder.runtime is not None:
                builder.runtime.close()
    assert {p.name for p in old.pods} == {"eq-idle", "eq-busy", "eq-writer"}
    gap = (new.collected_at_unix_nanos - old.collected_at_unix_nanos) / 1e9
    before, after = flatten(old), flatten(new)
    missing, differing = [], []
    for path, value in before.items():
        if path.startswith(NOT_COMPARED):
            continue
        if path not in after:
            if path.endswith("memory.available_bytes") and value == 0:
                assert not new_limit(new, path), f"{path}: limited container lost its figure"
                continue
            missing.append(path)
            continue
        if path.startswith("node.") or path.endswith(SOURCE_FIELDS):
            continue  # node: the same collectors either way, read a moment apart
        rule = _rule(path)
        numeric = isinstance(value, int | float) and not isinstance(value, bool)
        same = rule(value, after[path], gap) if rule and numeric else after[path] == value
        if not same:
            differing.append(f"{path}: old {value!r}, new {after[path]!r}")
    assert not missing, f"fields lost: {missing}"
    assert not differing, f"fields changed ({gap:.2f} s apart): {differing}"
    # and the sources say what changed: CPU and memory from the cgroup now
    spin = next(c for p in new.pods for c in p.containers if c.name == "spin")
    assert (spin.cpu.source, spin.memory.source, spin.cpu.rate_source) == (
        "cgroup",
        "cgroup",
        "computed",
    )
    assert spin.cpu.usage_cores == pytest.approx(0.5, abs=0.15)
    assert spin.cpu.cfs_throttled_periods_total > 0  # the cgroup's own figures, as before
    assert new.health.HasField("process_cpu_seconds_total")
    assert new.health.process_resident_memory_bytes > 0


def new_limit(report: tm.Metrics, path: str) -> bool:
    """Whether the container named in `path` has a memory limit in `report`."""
    container_id = path.split(".containers[", 1)[1].split("]", 1)[0]
    container = next(c for p in report.pods for c in p.containers if c.id == container_id)
    return container.limits.HasField("memory_bytes")
