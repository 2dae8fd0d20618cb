"""/proc/diskstats: I/O counters per block device (the kernel's
Documentation/admin-guide/iostats.rst).

Kernels before 4.18 print 14 fields, 4.18 adds four discard fields (18), 5.5 adds
two flush fields (20). Sectors are 512 bytes whatever the device's block size; times
are milliseconds. Values stay as the kernel gives them; the collector converts.
"""

from __future__ import annotations

from typing import NamedTuple

BASE_FIELDS = 14
DISCARD_FIELDS = 18
FLUSH_FIELDS = 20
# Partitions on kernels before 2.6.25 had four counters only: node_exporter skips them.
OLD_PARTITION_FIELDS = 7


class DiscardCounters(NamedTuple):
    completed: int
    merged: int
    sectors: int
    time_ms: int


class FlushCounters(NamedTuple):
    requests: int
    time_ms: int


class DiskCounters(NamedTuple):
    major: int
    minor: int
    device: str
    reads_completed: int
    reads_merged: int
    sectors_read: int
    read_time_ms: int
    writes_completed: int
    writes_merged: int
    sectors_written: int
    write_time_ms: int
    io_in_progress: int
    io_time_ms: int
    io_weighted_time_ms: int
    # 4.18 and later
    discards: DiscardCounters | None
    # 5.5 and later
    flushes: FlushCounters | None


def parse_diskstats(text: str) -> list[DiskCounters]:
    disks = []
    for raw in text.splitlines():
        fields = raw.split()
        if not fields or len(fields) == OLD_PARTITION_FIELDS:
            continue
        if len(fields) < BASE_FIELDS:
            raise ValueError(f"truncated diskstats line {raw!r}")
        try:
            major, minor = int(fields[0]), int(fields[1])
            numbers = list(map(int, fields[3:FLUSH_FIELDS]))
        except ValueError as exc:
            raise ValueError(f"non-numeric diskstats line {raw!r}") from exc
        (
            reads_completed,
            reads_merged,
            sectors_read,
            read_time_ms,
            writes_completed,
            writes_merged,
            sectors_written,
            write_time_ms,
            io_in_progress,
            io_time_ms,
            io_weighted_time_ms,
        ) = numbers[:11]
        discards = flushes = None
        if len(fields) >= DISCARD_FIELDS:
            discards_completed, discards_merged, sectors_discarded, discard_time_ms = numbers[11:15]
            discards = DiscardCounters(
                completed=discards_completed,
                merged=discards_merged,
                sectors=sectors_discarded,
                time_ms=discard_time_ms,
            )
        if len(fields) >= FLUSH_FIELDS:
            flush_requests, flush_time_ms = numbers[15:17]
            flushes = FlushCounters(requests=flush_requests, time_ms=flush_time_ms)
        disks.append(
            DiskCounters(
                major=major,
                minor=minor,
                device=fields[2],
                reads_completed=reads_completed,
                reads_merged=reads_merged,
                sectors_read=sectors_read,
                read_time_ms=read_time_ms,
                writes_completed=writes_completed,
                writes_merged=writes_merged,
                sectors_written=sectors_written,
                write_time_ms=write_time_ms,
                io_in_progress=io_in_progress,
                io_time_ms=io_time_ms,
                io_weighted_time_ms=io_weighted_time_ms,
                discards=discards,
                flushes=flushes,
            )
        )
    return disks
