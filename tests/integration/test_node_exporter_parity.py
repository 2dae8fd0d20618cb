"""The agent's node figures against the real node_exporter (Debian's 1.5) on this machine.

node_exporter is scraped, the agent collects, node_exporter is scraped again: every
counter the agent reports lies between the two scrapes, every constant is equal, and the
gauges that move by themselves (free space, free memory, file handles) are within what
moved between the scrapes plus a small margin. node_exporter runs with upstream 1.5.0's
filter defaults, which Debian's package changes, so both sides filter alike.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from kubensage_agent.collectors.errors import CollectorErrors
from kubensage_agent.collectors.node import NodeCollector
from kubensage_agent.collectors.node.osrelease import REPORTED_KEYS
from kubensage_agent.hostfs import HostPaths
from kubensage_api.telemetry import telemetry_pb2 as tm
from tests.support.node_exporter import Series, node_exporter, scrape

MIB = 1 << 20


@dataclass
class Moment:
    """node_exporter just before and just after the agent's collection."""

    before: Series
    node: tm.Node
    after: Series

    def one(self, name: str, **labels: str) -> tuple[float, float]:
        key = frozenset(labels.items())
        return self.before[name][key], self.after[name][key]

    def label_sets(self, name: str) -> tuple[set[frozenset[tuple[str, str]]], ...]:
        return set(self.before.get(name, {})), set(self.after.get(name, {}))


def counter_between(moment: Moment, value: float, name: str, **labels: str) -> None:
    """A counter the agent read between the scrapes (a hair of float slack: node_exporter
    multiplies by 0.001 where the agent divides by 1000)."""
    low, high = moment.one(name, **labels)
    slack = 1e-9 * max(abs(high), 1.0)
    assert low - slack <= value <= high + slack, (name, labels, low, value, high)


def gauge_near(moment: Moment, value: float, margin: float, name: str, **labels: str) -> None:
    low, high = sorted(moment.one(name, **labels))
    assert low - margin <= value <= high + margin, (name, labels, low, value, high, margin)


@pytest.fixture(scope="module")
def exporter_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with node_exporter(tmp_path_factory.mktemp("node-exporter")) as url:
        yield url


@pytest.fixture(scope="module")
def moment(exporter_url: str) -> Moment:
    collector = NodeCollector(HostPaths(Path("/")), "parity", CollectorErrors())
    collector.collect()  # the first cycle starts the statfs thread and opens the table
    scrape(exporter_url)
    before = scrape(exporter_url).series
    node = collector.collect()
    after = scrape(exporter_url).series
    return Moment(before, node, after)


def test_filesystems_same_mounts_same_sizes(moment: Moment) -> None:
    def labels(fs: tm.Filesystem) -> frozenset[tuple[str, str]]:
        return frozenset(
            {"device": fs.device, "mountpoint": fs.mountpoint, "fstype": fs.fstype}.items()
        )

    ours = {labels(fs): fs for fs in moment.node.filesystems}
    before, after = moment.label_sets("node_filesystem_device_error")
    # mounts that came or went between the scrapes (pods of other tests) may differ
    assert before & after <= set(ours) <= before | after
    compared = 0
    for key, fs in ours.items():
        if key not in before & after:
            continue
        label = dict(key)
        assert fs.device_error == bool(moment.one("node_filesystem_device_error", **label)[0])
        if fs.device_error:
            continue
        compared += 1
        size = moment.one("node_filesystem_size_bytes", **label)
        assert fs.size_bytes == size[0] == size[1]
        assert fs.files == moment.one("node_filesystem_files", **label)[0]
        assert fs.read_only == bool(moment.one("node_filesystem_readonly", **label)[0])
        space = max(64 * MIB, fs.size_bytes // 100)
        gauge_near(moment, fs.free_bytes, space, "node_filesystem_free_bytes", **label)
        gauge_near(moment, fs.available_bytes, space, "node_filesystem_avail_bytes", **label)
        inodes = max(1000, fs.files // 100)
        gauge_near(moment, fs.files_free, inodes, "node_filesystem_files_free", **label)
    assert compared >= 1
    assert ("mountpoint", "/") in set().union(*ours)


def test_disks_same_devices_counters_between_scrapes(moment: Moment) -> None:
    devices = {disk.device for disk in moment.node.disks}
    before, after = moment.label_sets("node_disk_reads_completed_total")
    assert {dict(k)["device"] for k in before} == devices == {dict(k)["device"] for k in after}
    assert devices
    names = {
        "reads_completed": "node_disk_reads_completed_total",
        "reads_merged": "node_disk_reads_merged_total",
        "read_bytes": "node_disk_read_bytes_total",
        "read_time_seconds": "node_disk_read_time_seconds_total",
        "writes_completed": "node_disk_writes_completed_total",
        "writes_merged": "node_disk_writes_merged_total",
        "written_bytes": "node_disk_written_bytes_total",
        "write_time_seconds": "node_disk_write_time_seconds_total",
        "io_time_seconds": "node_disk_io_time_seconds_total",
        "io_time_weighted_seconds": "node_disk_io_time_weighted_seconds_total",
        "discards_completed": "node_disk_discards_completed_total",
        "discards_merged": "node_disk_discards_merged_total",
        "discarded_sectors": "node_disk_discarded_sectors_total",
        "discard_time_seconds": "node_disk_discard_time_seconds_total",
        "flush_requests": "node_disk_flush_requests_total",
        "flush_time_seconds": "node_disk_flush_requests_time_seconds_total",
    }
    for disk in moment.node.disks:
        for field, name in names.items():
            assert disk.HasField(field) == (name in moment.before), (disk.device, field)
            if disk.HasField(field):
                counter_between(moment, getattr(disk, field), name, device=disk.device)


def test_per_cpu_seconds_same_cpus_and_modes(moment: Moment) -> None:
    before, _ = moment.label_sets("node_cpu_seconds_total")
    modes = ("user", "nice", "system", "idle", "iowait", "irq", "softirq", "steal")
    ours = {frozenset({"cpu": c.cpu, "mode": m}.items()) for c in moment.node.cpus for m in modes}
    assert ours == before
    for cpu in moment.node.cpus:
        for mode in modes:
            counter_between(
                moment, getattr(cpu, mode), "node_cpu_seconds_total", cpu=cpu.cpu, mode=mode
            )
        for field, mode in (("guest", "user"), ("guest_nice", "nice")):
            counter_between(
                moment, getattr(cpu, field), "node_cpu_guest_seconds_total", cpu=cpu.cpu, mode=mode
            )


def test_proc_stat_counters_and_boot_time(moment: Moment) -> None:
    node = moment.node
    counter_between(moment, node.context_switches, "node_context_switches_total")
    counter_between(moment, node.forks, "node_forks_total")
    counter_between(moment, node.interrupts, "node_intr_total")
    assert moment.one("node_boot_time_seconds") == (node.boot_time_unix_nanos / 1e9,) * 2


def test_vmstat_and_file_handles(moment: Moment) -> None:
    vmstat = moment.node.vmstat
    for field in ("pgfault", "pgmajfault", "pgpgin", "pgpgout", "pswpin", "pswpout", "oom_kill"):
        counter_between(moment, getattr(vmstat, field), f"node_vmstat_{field}")
    handles = moment.node.file_descriptors
    assert moment.one("node_filefd_maximum") == (handles.maximum, handles.maximum)
    gauge_near(moment, handles.allocated, 5000, "node_filefd_allocated")
    conntrack = moment.node.conntrack
    assert moment.one("node_nf_conntrack_entries_limit")[0] == conntrack.limit
    gauge_near(moment, conntrack.entries, 1000, "node_nf_conntrack_entries")


def test_meminfo_every_field_under_node_exporters_name(moment: Moment) -> None:
    def exporter_name(field: str, value_in_bytes: bool) -> str:
        name = re.sub(r"\((.*)\)", r"_\1", field)
        return f"node_memory_{name}_bytes" if value_in_bytes else f"node_memory_{name}"

    meminfo = moment.node.meminfo
    names = {exporter_name(f, not f.startswith("HugePages_")): f for f in meminfo}
    served = {name for name in moment.before if name.startswith("node_memory_")}
    assert set(names) == served
    total = meminfo["MemTotal"]
    for name, field in names.items():
        if field in ("MemTotal", "SwapTotal", "Hugepagesize", "HugePages_Total", "VmallocTotal"):
            assert moment.one(name) == (meminfo[field], meminfo[field])
        else:
            gauge_near(moment, meminfo[field], total // 50, name)


def test_network_devices_and_counters(moment: Moment) -> None:
    before, _ = moment.label_sets("node_network_receive_bytes_total")
    assert {dict(k)["device"] for k in before} == {i.name for i in moment.node.interfaces}
    names = {
        "receive_bytes": "receive_bytes",
        "receive_packets": "receive_packets",
        "receive_errors": "receive_errs",
        "receive_drops": "receive_drop",
        "receive_fifo": "receive_fifo",
        "receive_frame": "receive_frame",
        "receive_compressed": "receive_compressed",
        "receive_multicast": "receive_multicast",
        "transmit_bytes": "transmit_bytes",
        "transmit_packets": "transmit_packets",
        "transmit_errors": "transmit_errs",
        "transmit_drops": "transmit_drop",
        "transmit_fifo": "transmit_fifo",
        "transmit_collisions": "transmit_colls",
        "transmit_carrier": "transmit_carrier",
        "transmit_compressed": "transmit_compressed",
    }
    for interface in moment.node.interfaces:
        for field, name in names.items():
            counter_between(
                moment,
                getattr(interface, field),
                f"node_network_{name}_total",
                device=interface.name,
            )


def test_identity_uname_and_os_release(moment: Moment) -> None:
    node = moment.node
    (uname,) = moment.before["node_uname_info"]
    assert dict(uname) == {
        "sysname": node.uname_sysname,
        "release": node.kernel_release,
        "version": node.kernel_version,
        "machine": node.architecture,
        "nodename": node.hostname,
        "domainname": node.uname_domainname,
    }
    (os_info,) = moment.before["node_os_info"]
    assert dict(os_info) == {key.lower(): node.os_release.get(key, "") for key in REPORTED_KEYS}


def test_clock_sync_state_time_and_zone(moment: Moment) -> None:
    clock = moment.node.clock
    assert moment.one("node_timex_sync_status")[0] == float(clock.synchronised)
    assert moment.one("node_timex_status")[0] == clock.status
    assert moment.one("node_timex_tick_seconds")[0] == pytest.approx(clock.tick_seconds)
    assert moment.one("node_timex_tai_offset_seconds")[0] == clock.tai_offset_seconds
    assert moment.one("node_timex_loop_time_constant")[0] == clock.constant
    gauge_near(moment, clock.max_error_seconds, 0.01, "node_timex_maxerror_seconds")
    gauge_near(moment, clock.offset_seconds, 0.001, "node_timex_offset_seconds")
    gauge_near(
        moment, clock.frequency_adjustment_ratio, 1e-6, "node_timex_frequency_adjustment_ratio"
    )
    counter_between(moment, clock.time_seconds, "node_time_seconds")
    zone = {"time_zone": clock.time_zone}
    assert moment.one("node_time_zone_offset_seconds", **zone)[0] == clock.time_zone_offset_seconds


def test_load_averages(moment: Moment) -> None:
    load = moment.node.load
    for name, value in (
        ("node_load1", load.load1),
        ("node_load5", load.load5),
        ("node_load15", load.load15),
    ):
        gauge_near(moment, value, 0.5, name)
