"""The node_exporter profile served by a real relay from a real agent, next to the real
node_exporter on the same machine and in the same Prometheus.

Scrapes: every family the node-mixin reads that node_exporter serves here is served by the
profile with the same type, label names and label values, and values within one
collection interval. PromQL: the node-mixin's filesystem, disk, CPU, memory and clock
alerts and rules, asked of both sources in one Prometheus (job "node", told apart by a
`source` label), give the same series with the same values. The filesystem alerts run on
tmpfs mounts the test fills, so they fire by construction; node_exporter runs with
upstream 1.5's filters, which the agent shares.
"""

from __future__ import annotations

import fnmatch
import math
import os
import re
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from kubensage_lab.processes import (
    Prometheus,
    RelayProcess,
    Service,
    eventually,
    python_module,
)
from tests.conftest import require
from tests.support.node_exporter import (
    COLLECTORS,
    LabelSet,
    Scrape,
    node_exporter,
    readme_not_served,
    scrape,
)

NODE = "profile-node"
README = Path(__file__).resolve().parent.parent.parent / "README.md"
MIB = 1 << 20
# every family the node-mixin reads (alerts, rules, dashboards of node_exporter 1.5.0 and of
# its current main branch), macOS-only ones left out
MIXIN_FAMILIES = (
    "node_cpu_seconds_total",
    "node_load1",
    "node_load5",
    "node_load15",
    "node_memory_MemAvailable_bytes",
    "node_memory_MemTotal_bytes",
    "node_memory_Buffers_bytes",
    "node_memory_Cached_bytes",
    "node_memory_MemFree_bytes",
    "node_memory_Slab_bytes",
    "node_vmstat_pgmajfault",
    "node_disk_io_time_seconds_total",
    "node_disk_io_time_weighted_seconds_total",
    "node_disk_read_bytes_total",
    "node_disk_written_bytes_total",
    "node_filesystem_avail_bytes",
    "node_filesystem_size_bytes",
    "node_filesystem_files",
    "node_filesystem_files_free",
    "node_filesystem_readonly",
    "node_network_receive_bytes_total",
    "node_network_transmit_bytes_total",
    "node_network_receive_drop_total",
    "node_network_transmit_drop_total",
    "node_network_receive_errs_total",
    "node_network_transmit_errs_total",
    "node_network_receive_packets_total",
    "node_network_transmit_packets_total",
    "node_nf_conntrack_entries",
    "node_nf_conntrack_entries_limit",
    "node_filefd_allocated",
    "node_filefd_maximum",
    "node_timex_offset_seconds",
    "node_timex_sync_status",
    "node_timex_maxerror_seconds",
    "node_textfile_scrape_error",
    "node_md_disks",
    "node_md_disks_required",
    "node_systemd_unit_state",
    "node_systemd_service_restart_total",
    "node_bonding_slaves",
    "node_bonding_active",
    "node_uname_info",
    "node_exporter_build_info",
    "node_time_seconds",
)
# what the mixin reads that node_exporter serves here and the agent has no source for
MIXIN_NOT_SERVED = {"node_textfile_scrape_error"}
# served under a later node_exporter's name (1.9 reads irq PSI; 1.5 does not)
LATER_THAN_1_5 = {"node_pressure_irq_stalled_seconds_total"}
# gauges that hold still while the test runs: equal on both sides
CONSTANT = {
    "node_boot_time_seconds",
    "node_filefd_maximum",
    "node_nf_conntrack_entries_limit",
    "node_filesystem_size_bytes",
    "node_filesystem_files",
    "node_filesystem_readonly",
    "node_filesystem_device_error",
    "node_timex_status",
    "node_timex_tick_seconds",
    "node_timex_tai_offset_seconds",
    "node_timex_loop_time_constant",
    "node_timex_sync_status",
    "node_time_zone_offset_seconds",
    "node_uname_info",
    "node_os_info",
    "node_os_version",
    "node_memory_MemTotal_bytes",
    "node_memory_SwapTotal_bytes",
    "node_memory_Hugepagesize_bytes",
    "node_memory_HugePages_Total",
    "node_memory_VmallocTotal_bytes",
}
IDENTITY_OF_THE_EXPORTER = {"node_exporter_build_info"}  # label names compared, not values


@dataclass
class Mounts:
    """tmpfs mounts with known fill: one filling up, one full, one full and read-only."""

    base: Path
    filling: Path
    full: Path
    full_read_only: Path


def _mount_tmpfs(path: Path, options: str) -> None:
    path.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(path)], check=True)


def _fill(path: Path, kib: int) -> None:
    (path / "ballast").write_bytes(b"\0" * (kib * 1024))


def _keep_filling(path: Path, stop: threading.Event) -> None:
    """64 KiB and two inodes a second, bounded in steps, until stopped or full."""
    with (path / "growing").open("ab") as growing:
        for step in range(600):
            if stop.wait(0.5):
                return
            try:
                growing.write(b"\1" * 32 * 1024)
                growing.flush()
                (path / f"grown-{step}").touch()
            except OSError:
                return


@pytest.fixture(scope="module")
def mounts(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Mounts]:
    require(os.geteuid() == 0, "the test mounts tmpfs filesystems (root)")
    base = tmp_path_factory.mktemp("filesystems")
    made = Mounts(base, base / "filling", base / "full", base / "full-read-only")
    mounted: list[Path] = []
    stop = threading.Event()
    filler: threading.Thread | None = None
    try:
        _mount_tmpfs(made.filling, "size=64m,nr_inodes=4000")
        mounted.append(made.filling)
        _fill(made.filling, 40 * 1024)  # 37.5 % of the space left
        for index in range(2500):  # 37.5 % of the inodes left
            (made.filling / f"inode-{index}").touch()
        for path in (made.full, made.full_read_only):
            _mount_tmpfs(path, "size=8m")
            mounted.append(path)
            _fill(path, 8 * 1024 - 160)  # 2 % left
        subprocess.run(["mount", "-o", "remount,ro", str(made.full_read_only)], check=True)
        filler = threading.Thread(target=_keep_filling, args=(made.filling, stop), daemon=True)
        filler.start()
        yield made
    finally:
        stop.set()
        if filler is not None:
            filler.join(timeout=10)
        for path in reversed(mounted):
            subprocess.run(["umount", str(path)], check=False)


@dataclass
class Stack:
    exporter_url: str
    relay_url: str
    prometheus: Prometheus


def _scrape_configs(relay: str, exporter: str) -> str:
    """One job "node" as the mixin expects; `source` tells the two apart and node_exporter
    gets the node's name as instance, which the relay's profile sets itself."""
    return (
        "  - job_name: node\n"
        "    honor_labels: true\n"
        "    static_configs:\n"
        f"      - targets: ['{relay}']\n"
        "        labels: {source: kubensage}\n"
        f"      - targets: ['{exporter}']\n"
        f"        labels: {{source: node_exporter, instance: {NODE}}}\n"
    )


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, mounts: Mounts) -> Iterator[Stack]:
    require(Path("/usr/bin/prometheus").exists(), "prometheus (Debian package) evaluates")
    workdir = tmp_path_factory.mktemp("stack")
    with node_exporter(workdir, (*COLLECTORS, "pressure", "textfile")) as exporter_url:
        relay = RelayProcess(workdir, "relay", "--metric-profile", "node_exporter")
        agent = Service(
            "agent",
            python_module(
                "kubensage_agent",
                "run",
                "--relay-address",
                relay.address,
                "--interval",
                "1",
                "--node-name",
                NODE,
                # no runtime: node figures only, as on a node whose runtime is down
                "--cri-socket",
                f"unix://{workdir}/no-runtime.sock",
                "--state-dir",
                str(workdir / "agent-state"),
            ),
            workdir,
        )
        exporter_address = exporter_url.removeprefix("http://").removesuffix("/metrics")
        prometheus = Prometheus(
            workdir,
            [],
            scrape_configs=_scrape_configs(f"127.0.0.1:{relay.http}", exporter_address),
        )
        try:
            relay.start()
            agent.start()
            prometheus.start().wait_http(f"{prometheus.url}/-/ready")
            yield Stack(exporter_url, relay.metrics_url, prometheus)
        finally:
            prometheus.stop()
            agent.stop()
            relay.stop()


# -- scrapes: the profile against node_exporter, family by family ----------------------


@dataclass
class Sides:
    """node_exporter scraped before and after the report the relay serves was collected,
    and every scrape of it in between."""

    before: Scrape
    profile: Scrape
    after: Scrape
    seen: list[Scrape]

    def label_sets(self, name: str) -> tuple[set[LabelSet], set[LabelSet], set[LabelSet]]:
        """(node_exporter's before and after, the profile's, node_exporter's any time)"""
        ours = {
            frozenset(kv for kv in labels if kv[0] != "instance")
            for labels in self.profile.series[name]
        }
        steady = set(self.before.series[name]) & set(self.after.series[name])
        anytime = {labels for scraped in self.seen for labels in scraped.series.get(name, {})}
        return steady, ours, anytime

    def value(self, name: str, labels: LabelSet) -> tuple[float, float, float]:
        return (
            self.before.series[name][labels],
            self.profile.series[name][labels | {("instance", NODE)}],
            self.after.series[name][labels],
        )

    def shared(self) -> list[str]:
        return sorted(
            name
            for name in self.profile.types
            if name.startswith("node_") and name in self.before.types
        )


def _collected_after(url: str, moment: float) -> Scrape | None:
    """The relay's exposition once it holds a report the agent collected after `moment`."""
    scraped = scrape(url)
    times = list(scraped.series.get("node_time_seconds", {}).values())
    return scraped if times and times[0] > moment else None


@pytest.fixture(scope="module")
def sides(stack: Stack, mounts: Mounts) -> Sides:
    before = scrape(stack.exporter_url)
    seen = [before]
    # a report whose whole cycle ran after that scrape (cycles take well under a second)
    started = time.time() + 2

    def poll() -> Scrape | None:
        seen.append(scrape(stack.exporter_url))  # mounts of other tests may come and go
        return _collected_after(stack.relay_url, started)

    profile = eventually(poll, timeout=60)
    after = scrape(stack.exporter_url)
    return Sides(before, profile, after, [*seen, after])


def test_every_family_the_node_mixin_reads_is_served(sides: Sides) -> None:
    served_here = {name for name in MIXIN_FAMILIES if name in sides.before.types}
    assert {"node_filesystem_avail_bytes", "node_timex_sync_status"} <= served_here
    missing = {name for name in served_here if name not in sides.profile.types}
    assert missing == MIXIN_NOT_SERVED


def test_what_either_side_lacks_is_known(sides: Sides) -> None:
    ours = {name for name in sides.profile.types if name.startswith("node_")}
    theirs = {
        name for name in (*sides.before.types, *sides.after.types) if name.startswith("node_")
    }
    assert ours - theirs <= LATER_THAN_1_5
    documented = readme_not_served(README)
    undocumented = [
        name
        for name in theirs - ours
        if not any(fnmatch.fnmatchcase(name, pattern) for pattern in documented)
    ]
    assert undocumented == []


def test_same_types_label_names_and_label_values(sides: Sides) -> None:
    shared = sides.shared()
    assert len(shared) > 100  # every collector's families, the meminfo fields included
    for name in shared:
        assert sides.profile.types[name] == sides.before.types[name], name
        steady, ours, anytime = sides.label_sets(name)
        assert {frozenset(k for k, _ in labels) for labels in ours} == {
            frozenset(k for k, _ in labels) for labels in anytime
        }, name
        if name in IDENTITY_OF_THE_EXPORTER:
            continue
        # mounts and interfaces of other tests may come and go meanwhile
        assert steady <= ours <= anytime, (name, steady - ours, ours - anytime)
    for labels in sides.profile.series["node_cpu_seconds_total"]:
        assert dict(labels)["instance"] == NODE


def _margin(name: str, labels: LabelSet, sides: Sides) -> float:
    """How far a gauge that moves by itself may drift past what node_exporter saw move."""
    if name in ("node_filesystem_free_bytes", "node_filesystem_avail_bytes"):
        size = sides.before.series["node_filesystem_size_bytes"][labels]
        return max(64 * MIB, size / 100)
    if name == "node_filesystem_files_free":
        return max(1000, sides.before.series["node_filesystem_files"][labels] / 100)
    if name.startswith("node_memory_"):
        return sides.before.series["node_memory_MemTotal_bytes"][frozenset()] / 50
    margins = {
        "node_filefd_allocated": 5000,
        "node_nf_conntrack_entries": 1000,
        "node_load1": 1.0,
        "node_load5": 0.5,
        "node_load15": 0.5,
        "node_procs_running": 64,
        "node_procs_blocked": 64,
        "node_disk_io_now": 64,
        "node_timex_offset_seconds": 0.001,
        "node_timex_maxerror_seconds": 0.01,
        "node_timex_estimated_error_seconds": 0.01,
        "node_timex_frequency_adjustment_ratio": 1e-6,
    }
    return margins.get(name, 0.0)


def test_values_within_one_collection(sides: Sides) -> None:
    compared: set[str] = set()
    for name in sides.shared():
        if name in IDENTITY_OF_THE_EXPORTER:
            continue
        kind = sides.profile.types[name]
        steady, ours, _ = sides.label_sets(name)
        for labels in steady & ours:
            low, value, high = sides.value(name, labels)
            compared.add(name)
            if name in CONSTANT:
                assert low == value == high, (name, labels, low, value, high)
            elif kind in ("counter", "untyped") or name == "node_time_seconds":
                # a hair of float slack: node_exporter multiplies where the agent divides
                slack = 1e-9 * max(abs(high), 1.0)
                assert low - slack <= value <= high + slack, (name, labels, low, value, high)
            else:
                margin = _margin(name, labels, sides)
                low, high = min(low, high), max(low, high)
                assert low - margin <= value <= high + margin, (name, labels, low, value, high)
    assert compared == set(sides.shared()) - IDENTITY_OF_THE_EXPORTER


# -- PromQL: the node-mixin's expressions over both sources -----------------------------

# evaluation times of node_exporter's series around the profile's: a report the relay
# serves is up to one collection plus one scrape older than node_exporter's answer
SHIFTS = (-3.0, -2.0, -1.0, 0.0, 1.0)


def _alert(value: str, *conditions: str) -> str:
    return "(" + " and ".join((value, *conditions)) + ")"


def mixin_expressions(fs: str) -> dict[str, tuple[str, float]]:
    """name -> (expression with SEL for the source's selector, absolute slack). The
    mixin's [5m]/[6h] windows are [30s] here; where the machine's own load decides an
    alert, its value is compared instead of its threshold."""
    avail = f"node_filesystem_avail_bytes{{SEL,{fs}}}"
    size = f"node_filesystem_size_bytes{{SEL,{fs}}}"
    files_free = f"node_filesystem_files_free{{SEL,{fs}}}"
    files = f"node_filesystem_files{{SEL,{fs}}}"
    writable = f"node_filesystem_readonly{{SEL,{fs}}} == 0"

    def space(below: int, horizon: str | None) -> str:
        trend = [f"predict_linear({avail}[30s], {horizon}) < 0"] if horizon else []
        return _alert(f"{avail} / {size} * 100 < {below}", *trend, writable)

    def inodes(below: int, horizon: str | None) -> str:
        trend = [f"predict_linear({files_free}[30s], {horizon}) < 0"] if horizon else []
        return _alert(f"{files_free} / {files} * 100 < {below}", *trend, writable)

    cpu = "node_cpu_seconds_total{SEL"
    return {
        "NodeFilesystemSpaceFillingUp warning": (space(40, "24*60*60"), 1.0),
        "NodeFilesystemSpaceFillingUp critical": (space(20, "4*60*60"), 1.0),
        "NodeFilesystemAlmostOutOfSpace warning": (space(5, None), 1.0),
        "NodeFilesystemAlmostOutOfSpace critical": (space(3, None), 1.0),
        "NodeFilesystemFilesFillingUp warning": (inodes(40, "24*60*60"), 1.0),
        "NodeFilesystemFilesFillingUp critical": (inodes(20, "4*60*60"), 1.0),
        "NodeFilesystemAlmostOutOfFiles warning": (inodes(5, None), 1.0),
        "NodeFilesystemAlmostOutOfFiles critical": (inodes(3, None), 1.0),
        "read-only filesystems": (f"node_filesystem_readonly{{SEL,{fs}}} == 1", 0.0),
        "NodeClockSkewDetected": (
            "(node_timex_offset_seconds{SEL} > 0.05"
            " and deriv(node_timex_offset_seconds{SEL}[30s]) >= 0)"
            " or (node_timex_offset_seconds{SEL} < -0.05"
            " and deriv(node_timex_offset_seconds{SEL}[30s]) <= 0)",
            0.001,
        ),
        "NodeClockNotSynchronising": (
            "min_over_time(node_timex_sync_status{SEL}[30s]) == 0"
            " and node_timex_maxerror_seconds{SEL} >= 16",
            0.01,
        ),
        "clock offset": ("node_timex_offset_seconds{SEL}", 0.001),
        "instance:node_num_cpu:sum": (
            f'count without (cpu, mode) ({cpu},mode="idle"}})',
            0.0,
        ),
        "instance:node_cpu_utilisation:rate": (
            "1 - avg without (cpu) (sum without (mode) "
            f'(rate({cpu}, mode=~"idle|iowait|steal"}}[30s])))',
            0.05,
        ),
        "NodeCPUHighUsage value": (
            "sum without(mode) (avg without (cpu) "
            f'(rate({cpu}, mode!~"idle|iowait"}}[30s]))) * 100',
            5.0,
        ),
        "NodeSystemSaturation value (instance:node_load1_per_cpu:ratio)": (
            f'node_load1{{SEL}} / count without (cpu, mode) ({cpu}, mode="idle"}})',
            0.25,
        ),
        "instance:node_memory_utilisation:ratio": (
            "1 - ((node_memory_MemAvailable_bytes{SEL} or (node_memory_Buffers_bytes{SEL}"
            " + node_memory_Cached_bytes{SEL} + node_memory_MemFree_bytes{SEL}"
            " + node_memory_Slab_bytes{SEL})) / node_memory_MemTotal_bytes{SEL})",
            0.02,
        ),
        "NodeMemoryHighUtilization value": (
            "100 - (node_memory_MemAvailable_bytes{SEL} / node_memory_MemTotal_bytes{SEL} * 100)",
            2.0,
        ),
        "instance:node_vmstat_pgmajfault:rate (NodeMemoryMajorPagesFaults)": (
            "rate(node_vmstat_pgmajfault{SEL}[30s])",
            20.0,
        ),
        "instance_device:node_disk_io_time_seconds:rate": (
            'rate(node_disk_io_time_seconds_total{SEL, device!=""}[30s])',
            0.05,
        ),
        "instance_device:node_disk_io_time_weighted_seconds:rate (NodeDiskIOSaturation)": (
            'rate(node_disk_io_time_weighted_seconds_total{SEL, device!=""}[30s])',
            0.25,
        ),
        "instance:node_network_receive_bytes_excluding_lo:rate": (
            'sum without (device) (rate(node_network_receive_bytes_total{SEL, device!="lo"}[30s]))',
            64 * 1024,
        ),
        "instance:node_network_transmit_bytes_excluding_lo:rate": (
            "sum without (device) "
            '(rate(node_network_transmit_bytes_total{SEL, device!="lo"}[30s]))',
            64 * 1024,
        ),
        "NodeHighNumberConntrackEntriesUsed value": (
            "node_nf_conntrack_entries{SEL} / node_nf_conntrack_entries_limit{SEL}",
            0.01,
        ),
        "NodeFileDescriptorLimit value": (
            "node_filefd_allocated{SEL} * 100 / node_filefd_maximum{SEL}",
            0.1,
        ),
    }


Result = dict[LabelSet, float]


def _results(prometheus: Prometheus, expression: str, source: str, at: float) -> Result:
    promql = expression.replace("SEL", f'job="node",source="{source}"')
    return {
        frozenset((k, v) for k, v in row["metric"].items() if k != "source"): float(row["value"][1])
        for row in prometheus.query(promql, at)
    }


def _same(value: float, seen: list[float], slack: float) -> bool:
    if math.isnan(value) or any(math.isnan(v) for v in seen):
        return math.isnan(value) and all(math.isnan(v) for v in seen)
    low, high = min(seen), max(seen)
    margin = slack + 0.05 * max(abs(low), abs(high))
    return low - margin <= value <= high + margin


@pytest.fixture(scope="module")
def evaluated(stack: Stack, mounts: Mounts) -> tuple[float, dict[str, tuple[Result, list[Result]]]]:
    """Every expression over the profile at one time and over node_exporter around it,
    once Prometheus holds 40 s of both."""
    prometheus = stack.prometheus
    eventually(lambda: len(prometheus.query('node_time_seconds{job="node"}')) == 2, timeout=60)
    time.sleep(40)
    at = time.time() - max(SHIFTS)
    fs = f'fstype!="",mountpoint=~"{re.escape(str(mounts.base))}/.+"'.replace("\\", "\\\\")
    answers = {}
    for name, (expression, _) in mixin_expressions(fs).items():
        ours = _results(prometheus, expression, "kubensage", at)
        theirs = [_results(prometheus, expression, "node_exporter", at + s) for s in SHIFTS]
        answers[name] = (ours, theirs)
    return at, answers


@pytest.mark.parametrize("name", list(mixin_expressions("FS")))
def test_mixin_expression_gives_the_same_series_and_values(
    name: str, evaluated: tuple[float, dict[str, tuple[Result, list[Result]]]]
) -> None:
    _, answers = evaluated
    ours, theirs = answers[name]
    slack = mixin_expressions("FS")[name][1]
    assert set(ours) in [set(answer) for answer in theirs], (name, ours, theirs)
    for labels, value in ours.items():
        seen = [answer[labels] for answer in theirs if labels in answer]
        assert _same(value, seen, slack), (name, dict(labels), value, seen)


def test_filesystem_alerts_fire_for_the_filling_and_the_full_mount(
    evaluated: tuple[float, dict[str, tuple[Result, list[Result]]]], mounts: Mounts
) -> None:
    _, answers = evaluated

    def mountpoints(name: str) -> tuple[set[str], set[str]]:
        ours, theirs = answers[name]
        reference = theirs[SHIFTS.index(0.0)]
        return (
            {dict(labels)["mountpoint"] for labels in ours},
            {dict(labels)["mountpoint"] for labels in reference},
        )

    filling, full, read_only = (
        str(mounts.filling),
        str(mounts.full),
        str(mounts.full_read_only),
    )
    assert mountpoints("NodeFilesystemSpaceFillingUp warning") == ({filling}, {filling})
    assert mountpoints("NodeFilesystemFilesFillingUp warning") == ({filling}, {filling})
    assert mountpoints("NodeFilesystemAlmostOutOfSpace critical") == ({full}, {full})
    assert mountpoints("read-only filesystems") == ({read_only}, {read_only})
