"""The node's kernel-file parsers on captured files, older kernels' formats and damage."""

from __future__ import annotations

from pathlib import Path

import pytest

from kubensage_agent.parsers.diskstats import parse_diskstats
from kubensage_agent.parsers.filenr import parse_file_nr
from kubensage_agent.parsers.meminfo import parse_meminfo
from kubensage_agent.parsers.mounts import parse_mounts
from kubensage_agent.parsers.netdev import parse_net_dev
from kubensage_agent.parsers.stat import CPU_MODES, parse_stat
from kubensage_agent.parsers.statm import parse_statm_resident_pages
from kubensage_agent.parsers.sysctl import parse_sysctl_integer
from kubensage_agent.parsers.timex import RawTimex, decode_timex
from kubensage_agent.parsers.vmstat import parse_vmstat

FIXTURES = Path(__file__).parent / "fixtures"
REAL = FIXTURES / "debian12-hybrid"
VARIANTS = FIXTURES / "variants"
VMSTAT_FIELDS = ("pgfault", "pgmajfault", "pgpgin", "pgpgout", "pswpin", "pswpout", "oom_kill")


def read(path: Path) -> str:
    return path.read_text()


def test_stat_real_file_names_every_column_in_ticks() -> None:
    stat = parse_stat(read(REAL / "proc/stat"))
    assert stat.total.cpu == ""
    assert stat.total.ticks == {
        "user": 7400,
        "nice": 0,
        "system": 2115,
        "idle": 93811,
        "iowait": 320,
        "irq": 0,
        "softirq": 80,
        "steal": 22,
        "guest": 0,
        "guest_nice": 0,
    }
    assert [c.cpu for c in stat.cpus] == ["0", "1"]
    assert stat.cpus[0].ticks["idle"] == 48582
    assert (stat.context_switches, stat.boot_time, stat.forks) == (331176, 1795315371, 5355)
    assert (stat.interrupts, stat.procs_running, stat.procs_blocked) == (171642, 1, 0)


def test_stat_of_a_kernel_without_guest_columns() -> None:
    stat = parse_stat(read(VARIANTS / "stat-2.6.18"))
    # the real file's test above pins every column's name
    assert list(stat.total.ticks) == list(CPU_MODES[:8])
    assert stat.cpus[1].ticks["idle"] == 11313845
    assert stat.boot_time == 1062191376


@pytest.mark.parametrize(
    ("name", "message"), [("stat-garbage", "non-numeric"), ("stat-truncated", "truncated")]
)
def test_stat_rejects_damaged_files(name: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_stat(read(VARIANTS / name))


def test_stat_without_cpu_line_is_not_a_stat_file() -> None:
    with pytest.raises(ValueError, match="not a stat file"):
        parse_stat("ctxt 1\nbtime 2\n")


def test_meminfo_real_file_converts_kb_and_keeps_page_counts() -> None:
    fields = parse_meminfo(read(REAL / "proc/meminfo"))
    assert fields["MemTotal"] == 24683656 * 1024
    assert fields["MemAvailable"] == 24340552 * 1024
    assert "Active(anon)" in fields and "Inactive(file)" in fields
    assert fields["HugePages_Total"] == 0 and fields["Hugepagesize"] == 2048 * 1024


def test_meminfo_of_a_kernel_without_memavailable() -> None:
    fields = parse_meminfo(read(VARIANTS / "meminfo-3.10"))
    assert "MemAvailable" not in fields
    assert fields["SwapTotal"] == 839676 * 1024


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("meminfo-garbage", "non-numeric"),
        ("meminfo-truncated", "malformed"),
        ("meminfo-unit", "unknown unit"),
    ],
)
def test_meminfo_rejects_damaged_files(name: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_meminfo(read(VARIANTS / name))


def test_mounts_real_table() -> None:
    entries = parse_mounts(read(REAL / "proc/1/mounts"))
    assert len(entries) == 23
    root = next(e for e in entries if e.mountpoint == "/")
    assert (root.device, root.fstype, root.read_only) == ("/dev/vda", "ext4", False)
    assert "discard" in root.options
    shm = [e for e in entries if e.device == "shm"]
    assert len(shm) == 2 and all(e.mountpoint.endswith("/shm") and e.fstype == "tmpfs" for e in shm)


def test_mounts_unescape_mount_points_and_read_ro() -> None:
    entries = parse_mounts(read(VARIANTS / "mounts-escaped"))
    assert [e.mountpoint for e in entries] == ["/", "/mnt/backup disk", "/mnt/tab\there"]
    assert [e.read_only for e in entries] == [False, True, False]
    assert entries[2].device == "//fs/share"


def test_mounts_reject_a_truncated_line() -> None:
    with pytest.raises(ValueError, match="truncated"):
        parse_mounts(read(VARIANTS / "mounts-truncated"))


def test_diskstats_real_file_has_discards_and_flushes() -> None:
    disks = {d.device: d for d in parse_diskstats(read(REAL / "proc/diskstats"))}
    assert set(disks) == {f"loop{i}" for i in range(8)} | {"vda", "zram0"}
    vda = disks["vda"]
    assert (vda.major, vda.minor) == (254, 0)
    assert (vda.reads_completed, vda.sectors_read, vda.read_time_ms) == (243604, 14300138, 584835)
    assert (vda.writes_completed, vda.writes_merged, vda.sectors_written) == (
        95413,
        276324,
        12243128,
    )
    assert (vda.io_in_progress, vda.io_time_ms, vda.io_weighted_time_ms) == (0, 171868, 811335)
    assert vda.discards is not None and vda.discards.sectors == 974125024
    assert vda.flushes is not None and (vda.flushes.requests, vda.flushes.time_ms) == (
        20123,
        5207,
    )


def test_diskstats_older_kernels_lack_discards_then_flushes() -> None:
    old = parse_diskstats(read(VARIANTS / "diskstats-4.14"))
    assert [d.device for d in old] == ["sda", "sda1", "dm-0", "loop0"]
    assert all(d.discards is None and d.flushes is None for d in old)
    assert old[2].io_weighted_time_ms == 253700
    middle = parse_diskstats(read(VARIANTS / "diskstats-5.4"))
    assert middle[0].discards is not None and middle[0].discards.completed == 1024
    assert middle[0].flushes is None


def test_diskstats_skips_the_four_counter_partitions_of_2_6() -> None:
    disks = parse_diskstats(read(VARIANTS / "diskstats-2.6"))
    assert [d.device for d in disks] == ["hda"]


@pytest.mark.parametrize(
    ("name", "message"),
    [("diskstats-truncated", "truncated"), ("diskstats-garbage", "non-numeric")],
)
def test_diskstats_rejects_damaged_files(name: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_diskstats(read(VARIANTS / name))


def test_vmstat_picks_the_asked_counters() -> None:
    counters = parse_vmstat(read(REAL / "proc/vmstat"), VMSTAT_FIELDS)
    assert set(counters) == set(VMSTAT_FIELDS)
    assert counters["pgmajfault"] == 951
    older = parse_vmstat(read(VARIANTS / "vmstat-4.9"), VMSTAT_FIELDS)
    assert "oom_kill" not in older and older["pgfault"] == 6588814


def test_vmstat_rejects_a_malformed_asked_counter_and_empty_files() -> None:
    with pytest.raises(ValueError, match="pgfault"):
        parse_vmstat(read(VARIANTS / "vmstat-garbage"), VMSTAT_FIELDS)
    with pytest.raises(ValueError, match="empty"):
        parse_vmstat("", VMSTAT_FIELDS)


def test_file_nr_and_sysctl_integers() -> None:
    handles = parse_file_nr(read(REAL / "proc/sys/fs/file-nr"))
    assert (handles.allocated, handles.unused, handles.maximum) == (5963, 0, 2466170)
    assert parse_sysctl_integer(read(REAL / "proc/sys/net/netfilter/nf_conntrack_max")) == 262144
    with pytest.raises(ValueError, match="three"):
        parse_file_nr(read(VARIANTS / "file-nr-truncated"))
    with pytest.raises(ValueError, match="non-numeric"):
        parse_file_nr(read(VARIANTS / "file-nr-garbage"))
    with pytest.raises(ValueError, match="non-numeric"):
        parse_sysctl_integer(read(VARIANTS / "sysctl-garbage"))


def test_net_dev_real_file_reads_all_sixteen_columns() -> None:
    lo = next(i for i in parse_net_dev(read(REAL / "proc/net/dev")) if i.name == "lo")
    assert lo.receive_bytes == lo.transmit_bytes > 0
    assert (lo.receive_fifo, lo.receive_frame, lo.receive_multicast) == (0, 0, 0)
    assert (lo.transmit_collisions, lo.transmit_carrier, lo.transmit_compressed) == (0, 0, 0)


def test_net_dev_columns_land_in_their_named_fields() -> None:
    text = (
        "Inter-|   Receive |  Transmit\n"
        " face |bytes packets errs drop fifo frame compressed multicast|bytes ...\n"
        "  eth0: 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16\n"
    )
    (eth0,) = parse_net_dev(text)
    assert tuple(eth0)[1:] == tuple(range(1, 17))
    assert (eth0.receive_multicast, eth0.transmit_bytes, eth0.transmit_carrier) == (8, 9, 15)


def raw_timex(**changes: int) -> RawTimex:
    values = dict(
        state=0,
        offset=0,
        freq=0,
        maxerror=0,
        esterror=0,
        status=0,
        constant=0,
        tick=10000,
        tai=0,
    )
    return RawTimex(**{**values, **changes})


def test_timex_units_follow_sta_nano_and_the_fixed_point_formats() -> None:
    micro = decode_timex(raw_timex(offset=-2500, freq=65536 * 12, maxerror=16_000_000))
    assert micro.offset_seconds == pytest.approx(-0.0025)
    assert micro.frequency_adjustment_ratio == pytest.approx(1.000012)
    assert micro.max_error_seconds == pytest.approx(16.0)
    assert micro.tick_seconds == pytest.approx(0.01)
    nano = decode_timex(raw_timex(offset=-2500, status=0x2000))
    assert nano.offset_seconds == pytest.approx(-2.5e-6)
    assert nano.status == 0x2000


def test_timex_sync_status_is_the_return_value_not_time_error() -> None:
    assert decode_timex(raw_timex(state=0)).synchronised
    assert decode_timex(raw_timex(state=4)).synchronised  # TIME_WAIT after a leap second
    assert not decode_timex(raw_timex(state=5, status=0x40)).synchronised
    with pytest.raises(ValueError):
        decode_timex(raw_timex(state=-1))


def test_statm_resident_pages_from_the_second_column() -> None:
    assert parse_statm_resident_pages(read(REAL / "proc/self/statm")) == 8968


@pytest.mark.parametrize("name", ["statm-garbage", "statm-truncated"])
def test_damaged_statm_is_rejected(name: str) -> None:
    with pytest.raises(ValueError):
        parse_statm_resident_pages(read(VARIANTS / name))
