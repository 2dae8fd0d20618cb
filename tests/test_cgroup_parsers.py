"""Cgroup interface file parsers, mountinfo, uevent, cgroupsPath mapping and verbose status
info: on files captured from this project's v1 host, on v2 files in the kernel's and
runc's formats, and on damaged variants."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from kubensage_agent.cgroups.paths import cgroup_relative_path, expand_slice
from kubensage_agent.cri.verbose import parse_verbose_info
from kubensage_agent.parsers.cgroup import parse_cgroup_mounts
from kubensage_agent.parsers.cgroup_cpu import parse_cpu_stat, parse_cpuacct_stat
from kubensage_agent.parsers.cgroup_io import parse_blkio_rwstat, parse_io_stat
from kubensage_agent.parsers.cgroup_memory import (
    parse_memory_events,
    parse_memory_stat,
    parse_oom_control,
)
from kubensage_agent.parsers.cgroup_value import parse_flat_keyed, parse_single_value
from kubensage_agent.parsers.uevent import parse_uevent

FIXTURES = Path(__file__).parent / "fixtures"
V1 = FIXTURES / "cgroup-v1-cgroupfs"
V2_SYSTEMD = FIXTURES / "cgroup-v2-systemd"
V2_CGROUPFS = FIXTURES / "cgroup-v2-cgroupfs"
V1_CONTAINER = (
    "/kubepods/burstable/pod3543b418-eab7-4960-a333-4e85d3bc717b/"
    "ced19c88cbdebcb807559eab8f1f19e1675bca1ba88fbf1261d225f3e64d72b6"
)
POD_SLICE = "kubepods-burstable-pod6f1e2c5a_3b7d_4e8f_9a01_b2c3d4e5f607.slice"
CONTAINERD_ID = "4f1e8a7c2b9d4e6f8a1b3c5d7e9f0a2b4c6d8e0f1a3b5c7d9e1f2a4b6c8d0e2f"
CRIO_ID = "7a2c4e6f8b0d2f4a6c8e0b2d4f6a8c0e2b4d6f8a0c2e4b6d8f0a2c4e6b8d0f2a"
V2_CONTAINER = (
    f"/kubepods.slice/kubepods-burstable.slice/{POD_SLICE}/cri-containerd-{CONTAINERD_ID}.scope"
)


def v1_file(controller: str, name: str) -> str:
    return (V1 / "sys/fs/cgroup" / controller / V1_CONTAINER.lstrip("/") / name).read_text()


def v2_file(name: str) -> str:
    return (V2_SYSTEMD / "sys/fs/cgroup" / V2_CONTAINER.lstrip("/") / name).read_text()


# --- captured v1 files (a throttled, OOM-hit container on this project's host) ---------


def test_v1_cpu_stat_has_cfs_figures_only() -> None:
    stat = parse_cpu_stat(v1_file("cpu", "cpu.stat"))
    assert (stat.periods, stat.throttled_periods) == (61, 7)
    assert stat.throttled_seconds == pytest.approx(0.272420959)
    assert stat.usage_ns is None and stat.user_seconds is None


def test_v1_cpuacct_stat_is_in_user_hz_ticks() -> None:
    times = parse_cpuacct_stat(v1_file("cpuacct", "cpuacct.stat"), ticks_per_second=100)
    assert (times.user_seconds, times.system_seconds) == pytest.approx((2.10, 0.15))
    usage = parse_single_value(v1_file("cpuacct", "cpuacct.usage"))
    assert usage is not None
    assert times.user_seconds + times.system_seconds == pytest.approx(usage / 1e9, abs=0.05)


def test_v1_memory_stat_takes_the_hierarchical_totals() -> None:
    stat = parse_memory_stat(v1_file("memory", "memory.stat"))
    local = parse_flat_keyed(v1_file("memory", "memory.stat"))
    assert stat.rss == int(local["total_rss"]) == 110592
    assert stat.cache == int(local["total_cache"])
    assert stat.page_faults == int(local["total_pgfault"]) == 17700
    assert stat.inactive_file == int(local["total_inactive_file"])
    assert stat.swap == 0  # swap accounting on, nothing swapped
    assert stat.mapped_file == 0


def test_v1_oom_control_and_single_values() -> None:
    assert parse_oom_control(v1_file("memory", "memory.oom_control")) == 1
    assert parse_single_value(v1_file("memory", "memory.max_usage_in_bytes")) == 64 * 1024**2
    assert parse_single_value(v1_file("memory", "memory.failcnt")) == 0
    assert parse_single_value(v1_file("pids", "pids.current")) == 2
    assert parse_single_value(v1_file("pids", "pids.max")) is None  # "max": unlimited


def test_v1_blkio_throttle_files_per_device() -> None:
    assert parse_blkio_rwstat(v1_file("blkio", "blkio.throttle.io_service_bytes_recursive")) == {
        "254:0": (0, 8409088)
    }
    assert parse_blkio_rwstat(v1_file("blkio", "blkio.throttle.io_serviced_recursive")) == {
        "254:0": (0, 8)
    }
    assert parse_blkio_rwstat("Total 0\n") == {}  # no I/O yet


def test_hybrid_mountinfo_has_v1_controllers_and_an_empty_cgroup2() -> None:
    mounts = parse_cgroup_mounts((V1 / "proc/1/mountinfo").read_text())
    by_point = {m.mountpoint: m for m in mounts}
    assert by_point["/sys/fs/cgroup/unified"].version == 2
    assert "cpu" in by_point["/sys/fs/cgroup/cpu"].options
    assert "cpuacct" not in by_point["/sys/fs/cgroup/cpu"].options  # separate on this host
    assert "memory" in by_point["/sys/fs/cgroup/memory"].options
    assert all(m.whole_hierarchy for m in mounts)
    assert "/sys/fs/cgroup" not in by_point  # the tmpfs holding them is no cgroup


# --- v2 files in the kernel's documented formats and runc's test data ----------------


def test_v2_cpu_stat_has_usage_modes_and_cfs() -> None:
    stat = parse_cpu_stat(v2_file("cpu.stat"))
    assert stat.usage_ns == 8123456000
    assert (stat.user_seconds, stat.system_seconds) == pytest.approx((6.912345, 1.211111))
    assert (stat.periods, stat.throttled_periods) == (4213, 1597)
    assert stat.throttled_seconds == pytest.approx(92.345678)
    no_controller = parse_cpu_stat("usage_usec 10\nuser_usec 6\nsystem_usec 4\n")
    assert no_controller.periods is None and no_controller.usage_ns == 10_000


def test_v2_memory_stat_events_and_io_stat() -> None:
    stat = parse_memory_stat(v2_file("memory.stat"))
    assert (stat.rss, stat.cache, stat.mapped_file) == (6121017344, 26672709632, 993832960)
    assert stat.inactive_file == 20126994432
    assert stat.swap is None  # v2 keeps swap in memory.swap.current
    events = parse_memory_events(v2_file("memory.events"))
    assert (events.high, events.max, events.oom_kill) == (12, 37, 2)
    devices = parse_io_stat(v2_file("io.stat"))
    assert set(devices) == {"254:1", "254:0", "259:0"}
    assert devices["259:0"].written_bytes == 14245536256
    assert devices["259:0"].reads == 264538
    assert devices["254:0"].writes == 0


def test_pre_4_13_kernels_have_no_oom_kill_key() -> None:
    assert parse_oom_control("oom_kill_disable 0\nunder_oom 0\n") is None
    assert parse_memory_events("low 0\nhigh 0\nmax 4\noom 1\n").oom_kill is None


def test_io_stat_keys_this_kernel_lacks_stay_unset() -> None:
    devices = parse_io_stat("8:0 rbytes=10 wbytes=20 rios=1 wios=2 cost.vrate=100.00\n")
    assert devices["8:0"].read_bytes == 10 and devices["8:0"].writes == 2
    assert parse_io_stat("8:0 rbytes=10\n")["8:0"].written_bytes is None


def test_v2_mountinfo_from_the_host_and_from_inside_a_cgroup_namespace() -> None:
    (host,) = parse_cgroup_mounts((V2_SYSTEMD / "proc/1/mountinfo").read_text())
    assert (host.mountpoint, host.version, host.root) == ("/sys/fs/cgroup", 2, "/")
    namespaced = FIXTURES / "variants/cgroupns/proc/1/mountinfo"
    (seen,) = parse_cgroup_mounts(namespaced.read_text())
    assert seen.root == "/../../../.." and seen.whole_hierarchy
    subtree = "36 35 0:26 /kubepods.slice /mnt/cg rw - cgroup2 cgroup2 rw\n"
    assert not parse_cgroup_mounts(subtree)[0].whole_hierarchy


def test_mountinfo_unescapes_paths() -> None:
    line = r"40 31 0:37 / /sys/fs/cgroup/my\040cgroups rw - cgroup cgroup rw,pids" + "\n"
    assert parse_cgroup_mounts(line)[0].mountpoint == "/sys/fs/cgroup/my cgroups"


def test_uevent_names_the_device() -> None:
    uevent = parse_uevent((V1 / "sys/dev/block/254:0/uevent").read_text())
    assert uevent["DEVNAME"] == "vda" and uevent["MAJOR"] == "254"


# --- damaged files are rejected with ValueError ---------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "",
        "nr_periods 61\nnr_throttled\n",  # truncated: a key without its value
        "nr_periods sixty\nnr_throttled 7\nthrottled_time 1\n",
    ],
)
def test_damaged_cpu_stat(text: str) -> None:
    with pytest.raises(ValueError):
        parse_cpu_stat(text)


@pytest.mark.parametrize(
    "text", ["total_cache 4096\ntotal_rss\n", "total_cache 4k\ntotal_rss 1\n", "anon 1 2\n"]
)
def test_damaged_memory_stat(text: str) -> None:
    with pytest.raises(ValueError):
        parse_memory_stat(text)


def test_damaged_cpuacct_stat_and_events() -> None:
    with pytest.raises(ValueError, match="cpuacct"):
        parse_cpuacct_stat("user 10\n", ticks_per_second=100)  # the system line is missing
    with pytest.raises(ValueError):
        parse_memory_events("low 0\nhigh -\nmax\n")


@pytest.mark.parametrize(
    "text",
    [
        "254:0 Read 10\n254:0 Write\nTotal 10\n",  # truncated line
        "254:0 Read ten\nTotal 10\n",
        "254:0 Frobnicate 10\nTotal 10\n",
        "vda Read 10\nTotal 10\n",
    ],
)
def test_damaged_blkio_files(text: str) -> None:
    with pytest.raises(ValueError):
        parse_blkio_rwstat(text)


@pytest.mark.parametrize(
    "text", ["8:0 rbytes=1 wbytes\n", "8:0\n", "sda rbytes=1\n", "8:0 rbytes=x\n"]
)
def test_damaged_io_stat(text: str) -> None:
    with pytest.raises(ValueError):
        parse_io_stat(text)


@pytest.mark.parametrize("text", ["", "\n", "12a\n", "1.5\n"])
def test_damaged_single_values(text: str) -> None:
    with pytest.raises(ValueError):
        parse_single_value(text)


def test_damaged_mountinfo_and_uevent() -> None:
    with pytest.raises(ValueError, match="mountinfo line 1"):
        parse_cgroup_mounts("31 23 0:28 / /sys/fs/cgroup rw\n")
    with pytest.raises(ValueError, match="uevent"):
        parse_uevent("MAJOR=8\nDEVNAME\n")


# --- cgroupsPath -> the container's cgroup, for both drivers ---------------------------


def test_systemd_slices_expand_as_runc_and_the_kubelet_do() -> None:
    assert expand_slice("kubepods.slice") == "/kubepods.slice"
    assert expand_slice(POD_SLICE) == (f"/kubepods.slice/kubepods-burstable.slice/{POD_SLICE}")
    assert expand_slice("-.slice") == "/"
    for bad in ("a--b.slice", "-a.slice", "a.slice/b.slice", ".slice", "kubepods"):
        with pytest.raises(ValueError):
            expand_slice(bad)


def test_cgroups_path_for_containerd_and_cri_o_under_both_drivers() -> None:
    assert cgroup_relative_path(f"{POD_SLICE}:cri-containerd:{CONTAINERD_ID}") == V2_CONTAINER
    assert cgroup_relative_path(
        f"kubepods-besteffort-pod0b8d2f64_91ce_4a7b_8c3d_5e6f7a8b9c0d.slice:crio:{CRIO_ID}"
    ) == (
        "/kubepods.slice/kubepods-besteffort.slice/"
        f"kubepods-besteffort-pod0b8d2f64_91ce_4a7b_8c3d_5e6f7a8b9c0d.slice/crio-{CRIO_ID}.scope"
    )
    # a kubelet with --cgroup-root=custom.slice nests kubepods in it
    assert cgroup_relative_path("custom-kubepods-pod1.slice:cri-containerd:ab") == (
        "/custom.slice/custom-kubepods.slice/custom-kubepods-pod1.slice/cri-containerd-ab.scope"
    )
    assert cgroup_relative_path(":cri-containerd:ab") == "/system.slice/cri-containerd-ab.scope"
    assert cgroup_relative_path("machine.slice:libpod:x.slice") == "/machine.slice/x.slice"
    assert cgroup_relative_path(V1_CONTAINER) == V1_CONTAINER
    assert cgroup_relative_path("kubepods/besteffort/pod1/c1/") == "/kubepods/besteffort/pod1/c1"


@pytest.mark.parametrize(
    "path",
    ["", "/kubepods/../../etc", "kubepods.slice:cri-containerd:", "pod.slice:x:a/b", "/" * 5000],
)
def test_cgroups_paths_that_cannot_be_mapped(path: str) -> None:
    with pytest.raises(ValueError):
        cgroup_relative_path(path)


# --- verbose ContainerStatus info ------------------------------------------------------


def test_containerd_info_gives_pid_cgroup_runtime_and_spec_limits() -> None:
    raw = (V1 / "cri/containerd-status-info.json").read_text()
    info = parse_verbose_info({"info": raw})
    assert info.pid == json.loads(raw)["pid"]
    assert info.cgroups_path == V1_CONTAINER
    assert info.runtime_type == "io.containerd.runc.v2"
    resources = info.resources
    assert (resources.cpu_quota, resources.cpu_period, resources.cpu_shares) == (
        50000,
        100000,
        512,
    )
    assert resources.memory_limit == 64 * 1024**2


@pytest.mark.parametrize("tree", [V2_SYSTEMD, V2_CGROUPFS])
def test_cri_o_info_has_no_runtime_type_and_best_effort_limits(tree: Path) -> None:
    info = parse_verbose_info({"info": (tree / "cri/crio-status-info.json").read_text()})
    assert info.pid == 52210
    assert CRIO_ID in info.cgroups_path
    assert info.runtime_type == ""
    assert info.resources.cpu_shares == 2
    assert info.resources.cpu_quota is None and info.resources.memory_limit is None


@pytest.mark.parametrize(
    "info",
    [
        {},
        {"info": ""},
        {"info": "{not json"},
        {"info": "[1, 2]"},
        {"info": json.dumps({"pid": True, "runtimeSpec": {"linux": "x"}})},
        {"info": json.dumps({"pid": -4, "runtimeSpec": {"linux": {"cgroupsPath": 7}}})},
    ],
)
def test_malformed_info_gives_nothing(info: dict[str, str]) -> None:
    parsed = parse_verbose_info(info)
    assert parsed.pid is None and parsed.cgroups_path == "" and parsed.resources.cpu_quota is None
