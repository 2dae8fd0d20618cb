"""Container figures from cgroups against a real containerd: pods created as the kubelet
creates them (QoS cgroup parents, CPU and memory limits), real throttling, real writes,
real page cache, real OOM kills."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from kubensage_agent.parsers.cgroup import parse_cgroup_mounts
from kubensage_agent.report import ReportBuilder
from kubensage_api.telemetry import telemetry_pb2 as tm
from kubensage_lab.containerd import Containerd
from kubensage_lab.cri_driver import CriDriver, PodHandle, Resources
from kubensage_lab.processes import eventually
from kubensage_lab.stack import whole_disk_of
from tests.conftest import require
from tests.integration.test_containerd_agent import builder_for, collect_json
from tests.test_cgroup_collector import limits_of

MIB = 1024 * 1024
# more than the 64 MiB limit in one allocation: the kernel OOM-kills the allocating process
ALLOCATE_PAST_LIMIT = "dd if=/dev/zero of=/dev/null bs=200M count=1"


@pytest.fixture
def pods(driver: CriDriver) -> Iterator[list[PodHandle]]:
    made: list[PodHandle] = []
    yield made
    for pod in made:
        driver.remove_pod(pod)


@pytest.fixture
def builder(containerd: Containerd) -> Iterator[ReportBuilder]:
    reporter = builder_for(containerd.endpoint)
    yield reporter
    if reporter.runtime is not None:
        reporter.runtime.close()


def whole_disk(path: Path) -> tuple[str, str]:
    """("MAJ:MIN", kernel name) of the disk holding `path`."""
    disk = whole_disk_of(path)
    require(disk is not None, f"{path} is on no block device (tmpfs?): nothing to write to")
    assert disk is not None
    return disk


def one(builder: ReportBuilder, pod: str, name: str) -> tm.Container:
    """The newest attempt of a container in a fresh report (the series the relay shows)."""
    report = builder.build(1)
    attempts = [c for p in report.pods if p.name == pod for c in p.containers if c.name == name]
    return max(attempts, key=lambda c: c.attempt)


def pids_mount() -> str:
    """Where the pids controller is mounted: its v1 hierarchy, else the unified one."""
    mounts = parse_cgroup_mounts(Path("/proc/self/mountinfo").read_text())
    v1 = [m.mountpoint for m in mounts if m.version == 1 and "pids" in m.options]
    return (v1 or [m.mountpoint for m in mounts if m.version == 2])[0]


def test_cpu_limited_busy_loop_is_throttled(
    containerd: Containerd, driver: CriDriver, builder: ReportBuilder, pods: list[PodHandle]
) -> None:
    containerd.favour_cpu()
    pod = driver.run_pod("throttled", namespace="limits", qos="burstable")
    pods.append(pod)
    limited = Resources(cpu_request=0.25, cpu_limit=0.5, memory_limit=64 * MIB)
    container_id = driver.run_container(
        pod, "spin", "yes > /dev/null & yes > /dev/null & yes > /dev/null", resources=limited
    )
    # a container-level pids limit, as CRI-O's pids_limit sets one (containerd sets none)
    parent = pod.config.linux.cgroup_parent
    Path(f"{pids_mount()}{parent}/{container_id}/pids.max").write_text("512\n")
    before = eventually(
        lambda: (c := one(builder, "throttled", "spin")).cpu.cfs_periods_total > 0 and c
    )
    report = collect_json(containerd.endpoint, sample_interval=2)
    after = eventually(
        lambda: (
            (c := one(builder, "throttled", "spin")).cpu.cfs_periods_total
            > before.cpu.cfs_periods_total + 10
            and c
        )
    )
    periods = after.cpu.cfs_periods_total - before.cpu.cfs_periods_total
    throttled = after.cpu.cfs_throttled_periods_total - before.cpu.cfs_throttled_periods_total
    print(f"{throttled}/{periods} periods throttled, {after.cpu.cfs_throttled_seconds_total:.2f}s")
    assert throttled / periods > 0.25
    assert after.cpu.cfs_throttled_seconds_total > before.cpu.cfs_throttled_seconds_total
    # the same figures through `kubensage-agent collect --format json`
    (spin,) = [c for p in report["pods"] if p["name"] == "throttled" for c in p["containers"]]
    cpu = spin["cpu"]
    assert int(cpu["cfs_throttled_periods_total"]) / int(cpu["cfs_periods_total"]) > 0.25
    assert cpu["source"] == "cgroup" and spin["memory"]["source"] == "cgroup"
    assert spin["cgroup_path"] == f"{parent}/{container_id}"
    assert user_and_system_add_up(after)
    assert limits_of(after) == (0.5, 50000, 100000, 256, 64 * MIB)
    assert after.tasks.threads >= 3  # three loops (the shell execs the last)
    assert after.tasks.threads_max == 512


def user_and_system_add_up(container: tm.Container) -> bool:
    """User plus system seconds (cgroup, in 10 ms ticks) against usage (CRI, sampled a
    moment apart) for a container burning half a core."""
    cpu = container.cpu
    modes = cpu.user_seconds_total + cpu.system_seconds_total
    print(f"user+system {modes:.2f}s, usage {cpu.usage_seconds_total:.2f}s")
    return bool(modes == pytest.approx(cpu.usage_seconds_total, rel=0.05, abs=0.2))


def test_fsync_writes_show_on_the_named_disk(
    containerd: Containerd, driver: CriDriver, builder: ReportBuilder, pods: list[PodHandle]
) -> None:
    number, name = whole_disk(containerd.workdir)
    containerd.count_block_io(number)
    pod = driver.run_pod("writer", namespace="io")
    pods.append(pod)
    driver.run_container(
        pod, "sync", "dd if=/dev/zero of=/written bs=1M count=8 conv=fsync && sleep 100000"
    )

    def written() -> tm.BlockIo | None:
        devices = {io.device: io for io in one(builder, "writer", "sync").block_io}
        io = devices.get(name)
        return io if io is not None and io.written_bytes >= 8 * MIB else None

    io = eventually(written, timeout=60)
    print(f"{name}: {io.written_bytes} bytes in {io.writes} writes")
    assert f"{io.major}:{io.minor}" == number
    assert io.writes > 0


def test_a_file_read_back_is_in_page_cache(
    driver: CriDriver, builder: ReportBuilder, pods: list[PodHandle]
) -> None:
    pod = driver.run_pod("reader", namespace="io")
    pods.append(pod)
    driver.run_container(
        pod,
        "cat",
        "dd if=/dev/zero of=/cached bs=1M count=16 && cat /cached > /dev/null && sleep 100000",
    )
    cached = eventually(
        lambda: (c := one(builder, "reader", "cat")).memory.cache_bytes >= 8 * MIB and c,
        timeout=60,
    )
    print(f"page cache {cached.memory.cache_bytes / MIB:.1f} MiB")
    assert cached.memory.working_set_bytes > 0


def test_oom_kills_of_a_child_rise_while_the_container_runs(
    driver: CriDriver, builder: ReportBuilder, pods: list[PodHandle]
) -> None:
    pod = driver.run_pod("leaky", namespace="oom", qos="burstable")
    pods.append(pod)
    driver.run_container(
        pod,
        "worker",
        f"while true; do {ALLOCATE_PAST_LIMIT}; sleep 1; done",
        resources=Resources(cpu_request=0.1, memory_limit=64 * MIB),
    )
    seen: list[int] = []

    def killed_twice() -> tm.Container | None:
        container = one(builder, "leaky", "worker")
        if container.memory.HasField("oom_kills"):
            seen.append(container.memory.oom_kills)
        return container if seen and seen[-1] >= 2 else None

    worker = eventually(killed_twice, timeout=90, every=0.5)
    print(f"oom_kills over time: {seen}")
    assert worker.state == tm.CONTAINER_STATE_RUNNING
    assert seen == sorted(seen)
    assert worker.memory.max_usage_bytes >= 60 * MIB  # it reached its limit


def test_an_oom_killed_container_keeps_its_count_across_the_restart(
    driver: CriDriver, builder: ReportBuilder, pods: list[PodHandle]
) -> None:
    pod = driver.run_pod("crashy", namespace="oom", qos="burstable")
    pods.append(pod)
    limit = Resources(cpu_request=0.1, memory_limit=64 * MIB)
    driver.run_container(pod, "main", f"sleep 4; exec {ALLOCATE_PAST_LIMIT}", resources=limit)
    series: list[tuple[int, int, int]] = []  # (attempt, state, oom_kills)

    def record() -> tm.Container:
        container = one(builder, "crashy", "main")
        series.append((container.attempt, container.state, container.memory.oom_kills))
        return container

    ended = eventually(
        lambda: (c := record()).state == tm.CONTAINER_STATE_EXITED and c, timeout=90, every=0.5
    )
    assert (tm.CONTAINER_STATE_RUNNING, 0) in [(s, k) for _, s, k in series]  # seen running
    assert ended.reason == "OOMKilled"
    assert ended.memory.oom_kills >= 1
    # the kubelet restarts it: attempt 1 of the same container in the same pod
    driver.run_container(pod, "main", "sleep 100000", resources=limit, attempt=1)
    restarted = eventually(
        lambda: (c := record()).attempt == 1 and c.state == tm.CONTAINER_STATE_RUNNING and c
    )
    print(f"(attempt, state, oom_kills): {series}")
    assert restarted.memory.oom_kills == ended.memory.oom_kills
    kills = [k for _, _, k in series]
    assert kills == sorted(kills)  # never backwards for the (pod, container) series
