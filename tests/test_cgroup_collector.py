"""Container figures from cgroups: the CRI collector with --host-root on fixture trees laid
out as real nodes (v1 captured on this project's host; v2 with systemd and cgroupfs
drivers), runtimes answering as containerd and CRI-O do (a fake CRI server)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from kubensage_agent.cgroups.files import FdBudget
from kubensage_agent.cgroups.oomkills import OomKillLedger
from kubensage_agent.collectors.cgroup import COLLECTOR, CgroupCollector
from kubensage_agent.collectors.cri import CriCollector
from kubensage_agent.collectors.errors import CollectorErrors
from kubensage_agent.collectors.stats_policy import StatsPolicy
from kubensage_agent.cri.client import CriClient
from kubensage_agent.hostfs import HostPaths
from kubensage_agent.textformat import render_text
from kubensage_api.cri import api_pb2
from kubensage_api.telemetry import telemetry_pb2 as tm
from tests.support.fake_cri import NANOS, FakeContainer, FakeCriServer, FakeRuntime
from tests.support.reports import full_container, set_fields
from tests.test_cgroup_parsers import (
    CONTAINERD_ID,
    CRIO_ID,
    FIXTURES,
    V1,
    V1_CONTAINER,
    V2_CGROUPFS,
    V2_CONTAINER,
    V2_SYSTEMD,
)

TIMEOUT = 2.0
CRIO_POD = "0b8d2f64-91ce-4a7b-8c3d-5e6f7a8b9c0d"
CRIO_PATHS = {
    V2_SYSTEMD: (
        "/kubepods.slice/kubepods-besteffort.slice/"
        f"kubepods-besteffort-pod{CRIO_POD.replace('-', '_')}.slice/crio-{CRIO_ID}.scope"
    ),
    V2_CGROUPFS: f"/kubepods/besteffort/pod{CRIO_POD}/crio-{CRIO_ID}",
}
CONTAINERD_PATHS = {
    V2_SYSTEMD: V2_CONTAINER,
    V2_CGROUPFS: f"/kubepods/burstable/pod6f1e2c5a-3b7d-4e8f-9a01-b2c3d4e5f607/{CONTAINERD_ID}",
}
V1_ID = (V1 / "cri/container-id").read_text().strip()


def limits_of(container: tm.Container) -> tuple[float, int, int, int, int]:
    """Cores, CFS quota and period, shares, memory limit."""
    limits = container.limits
    return (
        limits.cpu_cores,
        limits.cpu_quota_micros,
        limits.cpu_period_micros,
        limits.cpu_shares,
        limits.memory_bytes,
    )


class Node:
    """A fake runtime on a host root copied from a fixture tree, and a collector for it."""

    def __init__(
        self,
        sock_dir: Path,
        tree: Path,
        budget: FdBudget | None = None,
        policy: StatsPolicy | None = None,
    ) -> None:
        self.root = sock_dir / "host"
        shutil.copytree(tree, self.root)
        self.runtime = FakeRuntime(name="containerd", version="1.6.20")
        self.server = FakeCriServer(sock_dir / "cri.sock", self.runtime)
        self.errors = CollectorErrors()
        paths = HostPaths(self.root)
        self.cgroups = CgroupCollector(paths, self.errors, budget or FdBudget(4096))
        self.collector = CriCollector(
            CriClient(self.server.endpoint, TIMEOUT), paths, self.errors, self.cgroups, policy
        )

    def info(self, runtime: str) -> str:
        return (self.root / "cri" / f"{runtime}-status-info.json").read_text()

    def container(self, container_id: str, sandbox_id: str, name: str, **kw: Any) -> None:
        """A container whose limits, as with containerd 1.6, are only in its runtime spec."""
        self.runtime.containers.append(
            FakeContainer(container_id, sandbox_id, name, status_resources=False, **kw)
        )

    def cgroup_file(self, relative: str, name: str) -> Path:
        return self.root / "sys/fs/cgroup" / relative.lstrip("/") / name

    def collect(self) -> dict[str, tm.Container]:
        pods, _ = self.collector.collect(time.monotonic() + TIMEOUT)
        return {c.id: c for pod in pods for c in pod.containers}


MakeNode = Callable[..., Node]


@pytest.fixture
def node_on(sock_dir: Path) -> Iterator[MakeNode]:
    started: list[Node] = []

    def make(tree: Path, budget: FdBudget | None = None, policy: StatsPolicy | None = None) -> Node:
        node = Node(sock_dir, tree, budget, policy)
        node.server.__enter__()
        started.append(node)
        return node

    yield make
    for node in started:
        node.collector.close()
        node.server.__exit__(None, None, None)


def v2_node(
    node_on: MakeNode, tree: Path, *, cri_stats: bool = True, policy: StatsPolicy | None = None
) -> Node:
    node = node_on(tree, policy=policy)
    node.runtime.add_pod("s1", "db-0", "shop")
    node.runtime.add_pod("s2", "cache-5f7b", "shop")
    node.container(
        CONTAINERD_ID,
        "s1",
        "postgres",
        usage_ns=7 * NANOS,
        info=node.info("containerd"),
        with_stats=cri_stats,
    )
    node.container(CRIO_ID, "s2", "redis", info=node.info("crio"), with_stats=cri_stats)
    return node


def test_v2_systemd_containerd_container_has_every_cgroup_figure(node_on: MakeNode) -> None:
    node = v2_node(node_on, V2_SYSTEMD)
    app = node.collect()[CONTAINERD_ID]
    assert app.cgroup_path == V2_CONTAINER
    # the cgroup gives usage and working set: by default it wins over CRI, and says so
    assert (app.cpu.source, app.memory.source) == ("cgroup", "cgroup")
    assert app.cpu.usage_seconds_total == pytest.approx(8.123456)
    assert app.memory.working_set_bytes == 34255073280 - 20126994432
    # the rest only the cgroup has
    cpu = app.cpu
    assert (cpu.user_seconds_total, cpu.system_seconds_total) == pytest.approx((6.912345, 1.211111))
    assert (cpu.cfs_periods_total, cpu.cfs_throttled_periods_total) == (4213, 1597)
    assert cpu.cfs_throttled_seconds_total == pytest.approx(92.345678)
    memory = app.memory
    assert (memory.cache_bytes, memory.mapped_file_bytes) == (26672709632, 993832960)
    assert memory.max_usage_bytes == 36507222016
    assert (memory.limit_hits, memory.high_events, memory.oom_kills) == (37, 12, 2)
    assert app.swap_usage_bytes == 1048576
    devices = {io.device: io for io in app.block_io}
    assert set(devices) == {"vda", "nvme0n1", "254:1"}  # 254:1 is unknown on this node
    nvme = devices["nvme0n1"]
    assert (nvme.major, nvme.minor) == (259, 0)
    assert (nvme.read_bytes, nvme.written_bytes) == (6911345664, 14245536256)
    assert (nvme.reads, nvme.writes) == (264538, 244914)
    assert app.tasks.threads == 17 and not app.tasks.HasField("threads_max")
    pressure = {p.resource: p for p in app.pressure}
    assert pressure["cpu"].some.total_seconds == pytest.approx(230.548833)
    assert pressure["io"].full.avg10 == pytest.approx(0.80)
    # containerd 1.6 leaves CRI status resources empty: limits come from the runtime spec
    assert limits_of(app) == (2.0, 200000, 100000, 2048, 64 * 1024**3)


def test_runtime_figures_win_where_both_give_them_when_preferred(node_on: MakeNode) -> None:
    node = v2_node(node_on, V2_SYSTEMD, policy=StatsPolicy(prefer="cri"))
    app = node.collect()[CONTAINERD_ID]
    assert (app.cpu.source, app.memory.source) == ("cri", "cri")
    assert app.cpu.usage_seconds_total == pytest.approx(7.0)
    assert app.memory.working_set_bytes == 10 * 1024**2
    assert app.cpu.cfs_periods_total == 4213  # what only the cgroup has, still from it


@pytest.mark.parametrize("tree", [V2_SYSTEMD, V2_CGROUPFS], ids=["systemd", "cgroupfs"])
def test_cri_o_and_containerd_containers_under_both_drivers(node_on: MakeNode, tree: Path) -> None:
    containers = v2_node(node_on, tree).collect()
    app, cache = containers[CONTAINERD_ID], containers[CRIO_ID]
    assert app.cgroup_path == CONTAINERD_PATHS[tree]
    assert cache.cgroup_path == CRIO_PATHS[tree]
    assert app.cpu.cfs_periods_total == 4213
    assert cache.cpu.cfs_periods_total == 0
    assert cache.tasks.threads_max == 1024  # CRI-O's pids_limit, on the container
    assert [(io.device, io.written_bytes) for io in cache.block_io] == [("sdb", 314773504)]
    assert cache.memory.mapped_file_bytes == 811008
    assert cache.limits.cpu_shares == 2 and not cache.limits.HasField("cpu_cores")


def test_without_cri_stats_the_cgroup_gives_usage_and_working_set(node_on: MakeNode) -> None:
    node = v2_node(node_on, V2_CGROUPFS, cri_stats=False)
    app = node.collect()[CONTAINERD_ID]
    assert (app.cpu.source, app.memory.source) == ("cgroup", "cgroup")
    assert app.cpu.usage_seconds_total == pytest.approx(8.123456)
    assert not app.cpu.HasField("usage_cores")  # one sample: no rate yet
    current, inactive_file = 34255073280, 20126994432
    memory = app.memory
    assert memory.usage_bytes == current
    assert memory.working_set_bytes == current - inactive_file
    assert memory.rss_bytes == 6121017344
    assert memory.available_bytes == 64 * 1024**3 - (current - inactive_file)
    assert (memory.page_faults, memory.major_page_faults) == (0, 0)
    # usage moves on: the rate comes from two cgroup samples
    cpu_stat = node.cgroup_file(CONTAINERD_PATHS[V2_CGROUPFS], "cpu.stat")
    cpu_stat.write_text(cpu_stat.read_text().replace("usage_usec 8123456", "usage_usec 9123456"))
    time.sleep(0.05)
    again = node.collect()[CONTAINERD_ID]
    assert again.cpu.usage_seconds_total == pytest.approx(9.123456)
    assert again.cpu.rate_source == "computed" and again.cpu.usage_cores > 0


def test_v1_container_captured_on_this_host(node_on: MakeNode) -> None:
    node = node_on(V1)
    node.runtime.add_pod("s1", "web-7d9c", "shop")
    node.container(V1_ID, "s1", "app", usage_ns=2 * NANOS, info=node.info("containerd"))
    app = node.collect()[V1_ID]
    assert app.cgroup_path == V1_CONTAINER
    assert (app.cpu.cfs_periods_total, app.cpu.cfs_throttled_periods_total) == (61, 7)
    assert (app.cpu.user_seconds_total, app.cpu.system_seconds_total) == pytest.approx((2.10, 0.15))
    memory = app.memory
    assert (memory.cache_bytes, memory.max_usage_bytes, memory.limit_hits) == (
        4096,
        64 * 1024**2,
        0,
    )
    assert memory.oom_kills == 1
    assert app.swap_usage_bytes == 0
    ((io),) = app.block_io
    assert (io.device, io.major, io.minor, io.written_bytes, io.writes) == (
        "vda",
        254,
        0,
        8409088,
        8,
    )
    assert app.tasks.threads == 2
    # PSI from the container's own directory in the hybrid host's cgroup2 mount
    cpu_psi = next(p for p in app.pressure if p.resource == "cpu")
    assert cpu_psi.some.total_seconds == pytest.approx(2.613885)
    assert app.limits.cpu_cores == pytest.approx(0.5)
    assert app.limits.memory_bytes == 64 * 1024**2


def test_the_simulated_container_of_loads_and_benches_carries_every_figure_of_a_real_one(
    node_on: MakeNode,
) -> None:
    """`full_container` stands for a container in the relay's tests, load and `make bench`:
    it must set every field the agent sets for the container captured on this host, so a
    figure per sample is never measured on reports lighter than real ones."""
    node = node_on(V1)
    node.runtime.add_pod("s1", "web-7d9c", "shop")
    node.container(V1_ID, "s1", "app", usage_ns=2 * NANOS, info=node.info("containerd"))
    real = set_fields(node.collect()[V1_ID])
    simulated = set_fields(full_container("app", V1_ID, "web-7d9c", "shop", "uid-1"))
    assert sorted(real - simulated) == []
    # the cgroup's own figures are among those compared, not only CRI's
    assert {"cpu.cfs_throttled_seconds_total", "block_io.writes", "pressure.full.avg10"} <= real


def test_agent_in_a_cgroup_namespace_still_finds_the_container(node_on: MakeNode) -> None:
    """As a DaemonSet pod reads the host: mount roots and /proc/<pid>/cgroup are relative
    to the agent's own cgroup namespace ("/../../.."), so only the runtime's cgroupsPath
    leads to the container's directory."""
    node = v2_node(node_on, V2_SYSTEMD)
    shutil.copytree(FIXTURES / "variants/cgroupns", node.root, dirs_exist_ok=True)
    assert "/../" in (node.root / "proc/41873/cgroup").read_text()
    app = node.collect()[CONTAINERD_ID]
    pressure = {p.resource: p.some.total_seconds for p in app.pressure}
    # the container's PSI, not the hierarchy root's (999999.999999 s)
    assert pressure == pytest.approx({"cpu": 230.548833, "memory": 4.58123, "io": 93.022871})
    assert app.cpu.cfs_periods_total == 4213 and app.memory.oom_kills == 2
    assert {io.device for io in app.block_io} == {"vda", "nvme0n1", "254:1"}


def test_missing_and_damaged_files_cost_only_their_fields(node_on: MakeNode) -> None:
    node = v2_node(node_on, V2_SYSTEMD)
    node.cgroup_file(V2_CONTAINER, "memory.peak").unlink()  # a kernel before 5.19
    memory_stat = node.cgroup_file(V2_CONTAINER, "memory.stat")
    good = memory_stat.read_text()
    memory_stat.write_text("anon 12\nfile\n")
    app = node.collect()[CONTAINERD_ID]
    assert not app.memory.HasField("max_usage_bytes")
    assert not app.memory.HasField("cache_bytes")
    assert app.memory.oom_kills == 2 and app.swap_usage_bytes == 1048576
    assert app.cpu.cfs_periods_total == 4213 and len(app.block_io) == 3
    assert node.errors.totals[COLLECTOR] == 1
    assert "cgroup:memory.stat" in node.errors.once.active()
    memory_stat.write_text(good)
    healed = node.collect()[CONTAINERD_ID]
    assert healed.memory.cache_bytes == 26672709632
    assert node.errors.totals[COLLECTOR] == 1
    assert "cgroup:memory.stat" not in node.errors.once.active()


def test_vm_isolated_pods_keep_cri_figures_only(node_on: MakeNode) -> None:
    node = node_on(V2_SYSTEMD)
    node.runtime.add_pod("s1", "db-0", "shop", runtime_handler="kata-qemu")
    node.container(CONTAINERD_ID, "s1", "postgres", usage_ns=NANOS, info=node.info("containerd"))
    app = node.collect()[CONTAINERD_ID]
    assert app.cpu.source == "cri" and app.memory.source == "cri"
    assert not app.cpu.HasField("cfs_periods_total")
    assert not app.memory.HasField("cache_bytes") and len(app.block_io) == 0
    assert len(app.pressure) == 0


def test_files_are_opened_once_and_closed_when_the_container_goes(node_on: MakeNode) -> None:
    budget = FdBudget(4096)
    node = v2_node(node_on, V2_SYSTEMD, cri_stats=True)
    node.cgroups.budget = budget
    node.collect()
    opened = budget.used
    assert opened >= 2 * 10  # every figure file of both containers stays open
    # renaming the pod's directory changes no open file: the paths are not looked up again
    pod_dir = node.cgroup_file(V2_CONTAINER, "").parent
    pod_dir.rename(pod_dir.with_name("moved.slice"))
    assert node.collect()[CONTAINERD_ID].cpu.cfs_periods_total == 4213
    assert budget.used == opened
    node.runtime.containers = [c for c in node.runtime.containers if c.id != CONTAINERD_ID]
    node.collect()
    assert 0 < budget.used < opened
    node.runtime.containers = []
    node.collect()
    assert budget.used == 0


def test_past_the_descriptor_budget_files_are_read_by_path(node_on: MakeNode) -> None:
    node = node_on(V2_SYSTEMD, FdBudget(0))
    node.runtime.add_pod("s1", "db-0", "shop")
    node.container(CONTAINERD_ID, "s1", "postgres", info=node.info("containerd"))
    assert node.collect()[CONTAINERD_ID].cpu.cfs_periods_total == 4213
    assert node.cgroups.budget.used == 0
    node.cgroup_file(V2_CONTAINER, "").rename(node.cgroup_file(V2_CONTAINER + ".gone", ""))
    gone = node.collect()[CONTAINERD_ID]  # read by path: the cgroup is gone
    assert not gone.cpu.HasField("cfs_periods_total")
    assert node.errors.totals[COLLECTOR] == 0  # a container that left is no error


def test_oom_kills_of_a_container_survive_its_restarts(node_on: MakeNode) -> None:
    node = v2_node(node_on, V2_CGROUPFS)
    events = node.cgroup_file(CONTAINERD_PATHS[V2_CGROUPFS], "memory.events")
    first = node.runtime.containers[0]
    assert node.collect()[CONTAINERD_ID].memory.oom_kills == 2
    # the main process is killed between two readings: the runtime says OOMKilled
    first.state, first.reason = api_pb2.CONTAINER_EXITED, "OOMKilled"
    assert node.collect()[CONTAINERD_ID].memory.oom_kills == 3
    # the kubelet starts attempt 1 of the same container, in a cgroup of its own
    restarted = f"/kubepods/burstable/pod6f1e2c5a-3b7d-4e8f-9a01-b2c3d4e5f607/{'b' * 64}"
    shutil.copytree(events.parent, node.cgroup_file(restarted, ""))
    node.cgroup_file(restarted, "memory.events").write_text(
        events.read_text().replace("oom_kill 2", "oom_kill 0")
    )
    info = node.info("containerd").replace(CONTAINERD_PATHS[V2_CGROUPFS], restarted)
    node.container("b" * 64, "s1", "postgres", attempt=1, info=info)
    both = node.collect()
    assert both["b" * 64].memory.oom_kills == 3  # 3 of attempt 0, none yet in attempt 1
    assert both[CONTAINERD_ID].memory.oom_kills == 3
    node.cgroup_file(restarted, "memory.events").write_text(events.read_text())
    assert node.collect()["b" * 64].memory.oom_kills == 5
    # the kubelet removes attempt 0: its kills stay counted
    node.runtime.containers = [c for c in node.runtime.containers if c.id != CONTAINERD_ID]
    assert node.collect()["b" * 64].memory.oom_kills == 5


def test_oom_kill_ledger_counts_exits_once_and_forgets_gone_sandboxes() -> None:
    ledger = OomKillLedger()
    key = ("s1", "app")
    ledger.observe(key, 0, running=True, reading=0, reason="")
    assert ledger.count(key, 0) == 0
    ledger.observe(key, 0, running=False, reading=None, reason="OOMKilled")
    assert ledger.count(key, 0) == 1  # the kill that ended it, after the last reading
    ledger.observe(key, 0, running=False, reading=None, reason="OOMKilled")
    assert ledger.count(key, 0) == 1  # seen again: counted once
    ledger.observe(key, 1, running=True, reading=None, reason="")
    assert ledger.count(key, 1) == 1
    ledger.observe(key, 1, running=False, reading=None, reason="Error")  # not an OOM kill
    ledger.observe(key, 2, running=True, reading=4, reason="")
    assert ledger.count(key, 2) == 5
    ledger.retain([(key, 2)], ["s1"])  # attempts 0 and 1 are gone: folded
    assert ledger.count(key, 2) == 5
    ledger.observe(("s1", "other"), 0, running=False, reading=None, reason="Completed")
    assert ledger.count(("s1", "other"), 0) is None  # nothing known: not a fake zero
    ledger.retain([], [])
    assert ledger.count(key, 2) is None


def test_runtime_cpu_rate_wins_over_a_computed_one(sock_dir: Path) -> None:
    runtime = FakeRuntime(name="cri-o")
    runtime.add_pod("s1", "p")
    runtime.containers = [FakeContainer("c1", "s1", "app", usage_ns=NANOS, nano_cores=300_000_000)]
    with FakeCriServer(sock_dir / "cri.sock", runtime) as server:
        collector = CriCollector(
            CriClient(server.endpoint, TIMEOUT), HostPaths(), CollectorErrors()
        )
        for _ in range(3):
            runtime.containers[0].usage_ns += NANOS
            time.sleep(0.02)
            pods, _ = collector.collect(time.monotonic() + TIMEOUT)
            cpu = pods[0].containers[0].cpu
            # a computed rate would be ~1 s per 20 ms: the runtime's figure is carried
            assert (cpu.rate_source, cpu.usage_cores) == ("runtime", pytest.approx(0.3))
        collector.close()


def test_limits_from_cri_status_when_the_runtime_fills_it(node_on: MakeNode) -> None:
    node = node_on(V2_SYSTEMD)
    node.runtime.add_pod("s1", "db-0", "shop")
    node.runtime.containers.append(
        FakeContainer(
            CONTAINERD_ID,
            "s1",
            "postgres",
            cpu_quota=25_000,
            memory_limit=512 * 1024**2,
            info=node.info("containerd"),
        )
    )
    limits = node.collect()[CONTAINERD_ID].limits
    assert limits.cpu_cores == pytest.approx(0.25)  # the status, not the spec's 2 cores
    assert limits.memory_bytes == 512 * 1024**2
    assert not limits.HasField("cpu_shares")  # the status said nothing of shares


def test_text_output_shows_cache_throttling_and_oom_kills(node_on: MakeNode) -> None:
    node = v2_node(node_on, V2_SYSTEMD)
    pods, _ = node.collector.collect(time.monotonic() + TIMEOUT)
    text = render_text(tm.Metrics(pods=pods))
    header, *rows = text.splitlines()[2:]
    assert header.split()[-3:] == ["CACHE(MiB)", "THROTTLED", "OOM"]
    postgres = next(row for row in rows if "postgres" in row).split()
    assert postgres[-3:] == [f"{26672709632 / 1024**2:.1f}", "38%", "2"]  # 1597 of 4213
    redis = next(row for row in rows if "redis" in row).split()
    assert redis[-2:] == ["-", "0"]  # no CFS periods: no quota


def test_a_cgroups_path_that_cannot_be_mapped_costs_only_cgroup_figures(
    node_on: MakeNode,
) -> None:
    node = node_on(V2_SYSTEMD)
    node.runtime.add_pod("s1", "db-0", "shop")
    bad = node.info("containerd").replace(V2_CONTAINER.split("/")[-2], "kubepods--burstable.slice")
    node.container(CONTAINERD_ID, "s1", "postgres", usage_ns=NANOS, info=bad)
    for _ in range(2):
        app = node.collect()[CONTAINERD_ID]
        assert app.cgroup_path == "" and not app.cpu.HasField("cfs_periods_total")
        assert app.cpu.usage_seconds_total == pytest.approx(1.0)
    assert node.errors.totals[COLLECTOR] == 1  # looked up once, counted once
    assert "cgroup:cgroupsPath" in node.errors.once.active()


def test_collect_command_with_host_root_on_a_v2_node(node_on: MakeNode) -> None:
    node = v2_node(node_on, V2_SYSTEMD)
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "kubensage_agent",
            "collect",
            "--format",
            "json",
            "--sample-interval",
            "0",
            "--host-root",
            str(node.root),
            "--cri-socket",
            node.server.endpoint,
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    containers = {c["id"]: c for p in report["pods"] for c in p["containers"]}
    app = containers[CONTAINERD_ID]
    assert app["cgroup_path"] == V2_CONTAINER
    assert app["cpu"]["cfs_throttled_periods_total"] == "1597"
    assert app["memory"]["oom_kills"] == "2" and app["tasks"]["threads"] == "17"
    assert containers[CRIO_ID]["block_io"] == [
        {
            "device": "sdb",
            "major": 8,
            "minor": 16,
            "reads": "192",
            "writes": "353",
            "read_bytes": "1459200",
            "written_bytes": "314773504",
        }
    ]
