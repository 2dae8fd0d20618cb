"""The node collectors over a host root built from captured files."""

from __future__ import annotations

import os
import shutil
import socket
from pathlib import Path

import psutil
import pytest

import kubensage_agent.collectors.node as node_module
from kubensage_agent.collectors.errors import CollectorErrors
from kubensage_agent.collectors.node import NodeCollector, default_node_name
from kubensage_agent.collectors.node.addresses import interface_addresses
from kubensage_agent.collectors.node.registry import NodeSettings
from kubensage_agent.hostfs import HostPaths
from kubensage_agent.parsers.mounts import parse_mounts

REAL = Path(__file__).parent / "fixtures" / "debian12-hybrid"
VARIANTS = Path(__file__).parent / "fixtures" / "variants"


@pytest.fixture
def host_root(tmp_path: Path) -> Path:
    """The captured files as a host root, with its mount points as directories (so statfs
    under the root answers, from the test's own filesystem)."""
    root = tmp_path / "host"
    shutil.copytree(REAL, root)
    for entry in parse_mounts((root / "proc/1/mounts").read_text()):
        (root / entry.mountpoint.lstrip("/")).mkdir(parents=True, exist_ok=True)
    return root


def collect(root: Path, settings: NodeSettings | None = None):  # type: ignore[no-untyped-def]
    errors = CollectorErrors()
    node = NodeCollector(HostPaths(root), "node-a", errors, settings).collect()
    return node, errors


def test_node_figures_come_from_the_host_root(host_root: Path) -> None:
    node, errors = collect(host_root)
    assert not errors.totals
    assert node.name == "node-a"
    # /proc/stat "cpu  7400 0 2115 93811 ..." in USER_HZ (100/s)
    assert node.cpu_seconds_by_mode["user"] == pytest.approx(74.0)
    assert node.cpu_seconds_by_mode["idle"] == pytest.approx(938.11)
    assert node.context_switches == 331176
    assert node.memory.total_bytes > node.memory.available_bytes > 0
    assert {p.resource for p in node.pressure} == {"cpu", "memory", "io"}
    assert {i.name for i in node.interfaces} == {"lo", "ifb0", "ifb1", "eth0"}
    assert node.os_image == "Debian GNU/Linux 12 (bookworm)"
    assert node.boot_time_unix_nanos == 1795315371 * 1_000_000_000
    assert node.uptime_seconds > 0


def test_proc_stat_gives_per_cpu_seconds_and_kernel_counters(host_root: Path) -> None:
    node, _ = collect(host_root)
    # "cpu0 2369 0 767 48582 108 0 31 12 0 0" and "cpu1 5030 0 1347 45229 212 0 48 10 0 0"
    assert [c.cpu for c in node.cpus] == ["0", "1"]
    assert node.cpu_count == 2
    cpu1 = node.cpus[1]
    assert (cpu1.user, cpu1.system, cpu1.idle) == pytest.approx((50.30, 13.47, 452.29))
    assert (cpu1.iowait, cpu1.softirq, cpu1.steal) == pytest.approx((2.12, 0.48, 0.10))
    assert (node.forks, node.interrupts) == (5355, 171642)
    assert (node.procs_running, node.procs_blocked) == (1, 0)


def test_figures_that_existed_before_keep_psutils_values(host_root: Path) -> None:
    """cpu_seconds_by_mode and the memory summary were psutil's; own parsing of the same
    files must give the same numbers."""
    node, _ = collect(host_root)
    previous = psutil.PROCFS_PATH
    psutil.PROCFS_PATH = str(host_root / "proc")
    try:
        times, memory, swap = psutil.cpu_times(), psutil.virtual_memory(), psutil.swap_memory()
    finally:
        psutil.PROCFS_PATH = previous
    assert dict(node.cpu_seconds_by_mode) == times._asdict()
    ours = node.memory
    assert (ours.total_bytes, ours.available_bytes, ours.free_bytes) == (
        memory.total,
        memory.available,
        memory.free,
    )
    assert (ours.buffers_bytes, ours.cached_bytes) == (memory.buffers, memory.cached)
    assert (ours.swap_total_bytes, ours.swap_free_bytes) == (swap.total, swap.free)
    assert node.cpu_count == len(node.cpus)


def test_cpu_count_is_the_online_cpus_sysconf_counts() -> None:
    node, _ = collect(Path("/"), NodeSettings(enabled=frozenset({"cpu"})))
    assert node.cpu_count == os.sysconf("SC_NPROCESSORS_ONLN")


def test_meminfo_keeps_every_field_in_bytes_and_hugepage_counts(host_root: Path) -> None:
    node, _ = collect(host_root)
    lines = (host_root / "proc/meminfo").read_text().splitlines()
    assert len(node.meminfo) == len(lines)
    assert node.meminfo["MemTotal"] == 24683656 * 1024
    assert node.meminfo["Active(anon)"] % 1024 == 0
    assert node.meminfo["HugePages_Total"] == 0
    assert node.meminfo["Hugepagesize"] == 2048 * 1024


def test_vmstat_filefd_conntrack_and_disks(host_root: Path) -> None:
    node, _ = collect(host_root)
    assert node.vmstat.pgmajfault == 951
    assert node.vmstat.HasField("oom_kill") and node.vmstat.oom_kill == 0
    assert (node.file_descriptors.allocated, node.file_descriptors.maximum) == (5963, 2466170)
    assert (node.conntrack.entries, node.conntrack.limit) == (0, 262144)
    # loop0-7 left out by node_exporter's default pattern; vda and zram0 kept
    assert [d.device for d in node.disks] == ["vda", "zram0"]
    vda = node.disks[0]
    # "254 0 vda 243604 41564 14300138 584835 95413 276324 12243128 208107 0 171868
    #  811335 28712 21 974125024 13183 20123 5207"
    assert (vda.reads_completed, vda.reads_merged) == (243604, 41564)
    assert vda.read_bytes == 14300138 * 512
    assert vda.read_time_seconds == pytest.approx(584.835)
    assert vda.written_bytes == 12243128 * 512
    assert (vda.io_now, vda.io_time_seconds) == (0, pytest.approx(171.868))
    assert vda.io_time_weighted_seconds == pytest.approx(811.335)
    assert (vda.discards_completed, vda.discarded_sectors) == (28712, 974125024)
    assert vda.discard_time_seconds == pytest.approx(13.183)
    assert (vda.flush_requests, vda.flush_time_seconds) == (20123, pytest.approx(5.207))


def test_filesystems_pass_node_exporters_default_filters(host_root: Path) -> None:
    node, _ = collect(host_root)
    mounted = {fs.mountpoint: fs for fs in node.filesystems}
    # /proc, /sys, /dev, cgroup and overlay layers are left out; / and the pods' shm stay
    assert "/" in mounted and len(mounted) == 3
    assert all(m.startswith("/tmp/ksbench-") for m in set(mounted) - {"/"})
    root = mounted["/"]
    assert (root.device, root.fstype, root.read_only) == ("/dev/vda", "ext4", False)
    stats = os.statvfs(host_root)
    assert root.size_bytes == stats.f_blocks * stats.f_bsize
    assert root.files == stats.f_files
    assert not any(fs.device_error for fs in node.filesystems)


def test_a_mount_point_that_cannot_be_statted_is_an_error_of_that_mount_only(
    host_root: Path,
) -> None:
    shutil.rmtree(host_root / "tmp")
    node, errors = collect(host_root)
    failed = [fs for fs in node.filesystems if fs.device_error]
    assert len(failed) == 2 and not any(fs.HasField("size_bytes") for fs in failed)
    assert errors.totals == {"filesystem": 2}
    assert len([c for c in errors.once.active() if c.startswith("statfs:")]) == 2
    healthy = [fs for fs in node.filesystems if not fs.device_error]
    assert [fs.mountpoint for fs in healthy] == ["/"] and healthy[0].size_bytes > 0


def test_kernel_without_psi_or_conntrack_gives_neither_and_no_error(host_root: Path) -> None:
    shutil.rmtree(host_root / "proc" / "pressure")
    shutil.rmtree(host_root / "proc" / "sys" / "net")
    node, errors = collect(host_root)
    assert len(node.pressure) == 0
    assert not node.HasField("conntrack")
    assert not errors.totals


def test_missing_files_cost_only_their_own_fields(host_root: Path) -> None:
    (host_root / "proc" / "meminfo").unlink()
    (host_root / "proc" / "net" / "dev").unlink()
    (host_root / "proc" / "diskstats").unlink()
    node, errors = collect(host_root)
    assert errors.totals == {"meminfo": 1, "netdev": 1, "diskstats": 1}
    assert not node.memory.HasField("total_bytes") and len(node.meminfo) == 0
    assert len(node.interfaces) == 0 and len(node.disks) == 0
    assert node.cpu_seconds_by_mode["user"] == pytest.approx(74.0)
    assert len(node.pressure) == 3 and len(node.filesystems) == 3


def test_one_damaged_proc_stat_costs_both_of_its_collectors(host_root: Path) -> None:
    shutil.copy(VARIANTS / "stat-garbage", host_root / "proc" / "stat")
    node, errors = collect(host_root)
    assert errors.totals == {"cpu": 1, "stat": 1}
    assert len(node.cpus) == 0 and not node.HasField("forks")
    assert node.memory.total_bytes > 0


def test_malformed_file_is_counted_each_cycle_but_logged_once(host_root: Path) -> None:
    (host_root / "proc" / "pressure" / "io").write_text("some avg10=x\n")
    errors = CollectorErrors()
    collector = NodeCollector(HostPaths(host_root), "n", errors)
    for _ in range(3):
        collector.collect()
    assert errors.totals["pressure"] == 3
    assert list(errors.once.active()) == ["collector:pressure"]


def test_disabled_collectors_are_skipped_and_unknown_names_refused(host_root: Path) -> None:
    node, _ = collect(host_root, NodeSettings().without("pressure", "netdev", "filesystem"))
    assert len(node.pressure) == 0 and len(node.interfaces) == 0 and len(node.filesystems) == 0
    assert node.cpu_seconds_by_mode["user"] == pytest.approx(74.0)
    with pytest.raises(ValueError, match="nonsense"):
        NodeSettings().without("nonsense")
    with pytest.raises(ValueError, match="nonsense"):
        NodeCollector(
            HostPaths(host_root), "n", CollectorErrors(), NodeSettings(frozenset({"nonsense"}))
        )


def test_the_default_node_name_is_the_lowercased_hostname_unless_node_name_is_set(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Kubernetes node names are lowercase; the relay refuses any other at hello."""
    monkeypatch.delenv("NODE_NAME", raising=False)
    monkeypatch.setattr(node_module.socket, "gethostname", lambda: "Worker-7.Example.NET")
    assert default_node_name() == "worker-7.example.net"
    monkeypatch.setenv("NODE_NAME", "from-the-downward-api")
    assert default_node_name() == "from-the-downward-api"


def test_node_addresses_are_this_namespaces_addresses_loopback_left_out(host_root: Path) -> None:
    """getifaddrs through ctypes against psutil's reading of the same call, in one
    network namespace with IPv4 and IPv6 addresses on loopback and its other links."""
    expected = [
        address.address.split("%", 1)[0]
        for name, addresses in sorted(psutil.net_if_addrs().items())
        if name != "lo"
        for address in addresses
        if address.family in (socket.AF_INET, socket.AF_INET6)
    ]
    node, errors = collect(host_root)
    assert list(node.addresses) == expected
    assert expected, "this host has addresses beyond loopback"
    assert not errors.totals
    everything = interface_addresses()
    assert {"127.0.0.1", "::1"} & set(everything["lo"])
    assert not {"127.0.0.1", "::1"} & set(node.addresses)
