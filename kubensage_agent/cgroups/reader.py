"""One container's cgroup interface files, opened once, read every cycle into a sample.

Which files: a table per cgroup version, each row a file (with older names to fall back
to) and the function that takes its figures. A file missing when the container's cgroup
is first opened (memory.peak before 5.19, memory.swap.current without swap, PSI on a v1-only
host) costs only its fields, for the container's lifetime.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from kubensage_agent.cgroups.files import GONE, UNSUPPORTED, CgroupFile, FdBudget
from kubensage_agent.cgroups.hierarchy import ContainerDirs
from kubensage_agent.hostfs import read_small
from kubensage_agent.parsers.cgroup_cpu import (
    CpuStat,
    UserSystem,
    parse_cpu_stat,
    parse_cpuacct_stat,
)
from kubensage_agent.parsers.cgroup_io import DeviceIo, parse_blkio_rwstat, parse_io_stat
from kubensage_agent.parsers.cgroup_memory import (
    MemoryEvents,
    MemoryStat,
    parse_memory_events,
    parse_memory_stat,
    parse_oom_control,
)
from kubensage_agent.parsers.cgroup_value import parse_single_value
from kubensage_agent.parsers.pressure import PressureStats, parse_pressure

TICKS_PER_SECOND = os.sysconf("SC_CLK_TCK")
UNIFIED = ""  # the "controller" of v2 files: the unified directory


@dataclass(slots=True)
class CgroupSample:
    """One cycle's figures of one container cgroup; None where no file gave them."""

    read_at_ns: int
    usage_ns: int | None = None
    user_seconds: float | None = None
    system_seconds: float | None = None
    cfs_periods: int | None = None
    cfs_throttled_periods: int | None = None
    cfs_throttled_seconds: float | None = None
    memory_usage: int | None = None
    memory_stat: MemoryStat | None = None
    # v2 memory.swap.current (v1 swap comes with memory.stat)
    swap_current: int | None = None
    max_usage: int | None = None
    limit_hits: int | None = None
    high_events: int | None = None
    oom_kills: int | None = None
    # v1: bytes and operations come from two files; v2: io.stat has both
    io_bytes: dict[str, tuple[int, int]] = field(default_factory=dict)
    io_operations: dict[str, tuple[int, int]] = field(default_factory=dict)
    io_stat: dict[str, DeviceIo] = field(default_factory=dict)
    threads: int | None = None
    threads_max: int | None = None
    pressure: list[tuple[str, PressureStats]] = field(default_factory=list)

    def working_set(self) -> int | None:
        """Usage minus inactive file pages, floored at 0, as containerd and the kubelet
        compute it (v1 total_inactive_file, v2 inactive_file)."""
        stat = self.memory_stat
        if self.memory_usage is None or stat is None or stat.inactive_file is None:
            return None
        return max(self.memory_usage - stat.inactive_file, 0)

    def swap(self) -> int | None:
        """v2 memory.swap.current; v1 memory.stat total_swap, which counts what
        memory.memsw.usage_in_bytes minus memory.usage_in_bytes does (the swap charged
        to the cgroup) and exists exactly when swap accounting does, without two more
        reads per cycle."""
        if self.swap_current is not None:
            return self.swap_current
        return self.memory_stat.swap if self.memory_stat is not None else None

    def block_io(self) -> Iterator[tuple[str, DeviceIo]]:
        yield from self.io_stat.items()
        for device in self.io_bytes.keys() | self.io_operations.keys():
            read_bytes, written_bytes = self.io_bytes.get(device, (None, None))
            reads, writes = self.io_operations.get(device, (None, None))
            yield device, DeviceIo(read_bytes, written_bytes, reads, writes)


def _take_cpu_stat(sample: CgroupSample, stat: CpuStat) -> None:
    sample.cfs_periods = stat.periods
    sample.cfs_throttled_periods = stat.throttled_periods
    sample.cfs_throttled_seconds = stat.throttled_seconds
    if stat.usage_ns is not None:  # v2 only; v1 has cpuacct
        sample.usage_ns = stat.usage_ns
        sample.user_seconds = stat.user_seconds
        sample.system_seconds = stat.system_seconds


def _take_user_system(sample: CgroupSample, times: UserSystem) -> None:
    sample.user_seconds, sample.system_seconds = times.user_seconds, times.system_seconds


def _take_memory_events(sample: CgroupSample, events: MemoryEvents) -> None:
    sample.limit_hits, sample.high_events, sample.oom_kills = (
        events.max,
        events.high,
        events.oom_kill,
    )


def _parse_cpuacct_stat(text: str) -> UserSystem:
    return parse_cpuacct_stat(text, TICKS_PER_SECOND)


def _into(name: str) -> Callable[[CgroupSample, Any], None]:
    """Take a file's parsed value as one field of the sample."""

    def take(sample: CgroupSample, value: Any) -> None:
        setattr(sample, name, value)

    return take


def _pressure_of(resource: str) -> Callable[[CgroupSample, PressureStats], None]:
    def take(sample: CgroupSample, stats: PressureStats) -> None:
        sample.pressure.append((resource, stats))

    return take


@dataclass(frozen=True, slots=True)
class FileRow:
    """One interface file: its directory ("" for the unified one), its names (older ones
    to fall back to), how to parse it and where its figures go. `usage_only` files carry
    figures the runtime also gives (CPU, memory usage): read only when the cgroup's are
    wanted, as each read costs ~2-4 us per container."""

    controller: str
    names: tuple[str, ...]
    parse: Callable[[str], Any]
    take: Callable[[CgroupSample, Any], None]
    usage_only: bool = False


PRESSURE_ROWS = tuple(
    FileRow(UNIFIED, (f"{resource}.pressure",), parse_pressure, _pressure_of(resource))
    for resource in ("cpu", "memory", "io")
)
V1_ROWS = (
    FileRow("cpu", ("cpu.stat",), parse_cpu_stat, _take_cpu_stat),
    FileRow("cpuacct", ("cpuacct.stat",), _parse_cpuacct_stat, _take_user_system),
    FileRow("cpuacct", ("cpuacct.usage",), parse_single_value, _into("usage_ns"), True),
    FileRow("memory", ("memory.stat",), parse_memory_stat, _into("memory_stat")),
    FileRow("memory", ("memory.usage_in_bytes",), parse_single_value, _into("memory_usage"), True),
    FileRow("memory", ("memory.max_usage_in_bytes",), parse_single_value, _into("max_usage")),
    FileRow("memory", ("memory.failcnt",), parse_single_value, _into("limit_hits")),
    FileRow("memory", ("memory.oom_control",), parse_oom_control, _into("oom_kills")),
    FileRow(
        "blkio",
        ("blkio.throttle.io_service_bytes_recursive", "blkio.throttle.io_service_bytes"),
        parse_blkio_rwstat,
        _into("io_bytes"),
    ),
    FileRow(
        "blkio",
        ("blkio.throttle.io_serviced_recursive", "blkio.throttle.io_serviced"),
        parse_blkio_rwstat,
        _into("io_operations"),
    ),
    FileRow("pids", ("pids.current",), parse_single_value, _into("threads")),
    *PRESSURE_ROWS,  # hybrid hosts: the container's directory in the cgroup2 mount
)
V2_ROWS = (
    FileRow(UNIFIED, ("cpu.stat",), parse_cpu_stat, _take_cpu_stat),  # usage comes with it
    FileRow(UNIFIED, ("memory.stat",), parse_memory_stat, _into("memory_stat")),
    FileRow(UNIFIED, ("memory.current",), parse_single_value, _into("memory_usage"), True),
    FileRow(UNIFIED, ("memory.swap.current",), parse_single_value, _into("swap_current")),
    FileRow(UNIFIED, ("memory.peak",), parse_single_value, _into("max_usage")),
    FileRow(UNIFIED, ("memory.events",), parse_memory_events, _take_memory_events),
    FileRow(UNIFIED, ("io.stat",), parse_io_stat, _into("io_stat")),
    FileRow(UNIFIED, ("pids.current",), parse_single_value, _into("threads")),
    *PRESSURE_ROWS,
)


class _OpenFile:
    """An open file with its last content and what it parsed to: most files of an idle
    container read the same from one cycle to the next, and comparing costs far less
    than parsing again."""

    __slots__ = ("content", "handle", "row", "value")

    def __init__(self, handle: CgroupFile, row: FileRow) -> None:
        self.handle = handle
        self.row = row
        self.content: bytes | None = None
        self.value: Any = None


class CgroupGoneError(Exception):
    """The container's cgroup disappeared (it exited or was removed) mid-read."""


class ContainerCgroup:
    """The open interface files of one container's cgroup."""

    def __init__(self, files: list[_OpenFile], threads_max: int | None) -> None:
        self.files = files
        self.threads_max = threads_max

    @classmethod
    def open(cls, dirs: ContainerDirs, budget: FdBudget) -> ContainerCgroup:
        def directory(controller: str) -> str | None:
            return dirs.unified if controller == UNIFIED else dirs.v1.get(controller)

        files = []
        for row in V1_ROWS if dirs.version == 1 else V2_ROWS:
            folder = directory(row.controller)
            if folder is None:
                continue
            for name in row.names:
                handle = CgroupFile.open(f"{folder}/{name}", budget)
                if handle is not None:
                    files.append(_OpenFile(handle, row))
                    break
        pids = directory("pids" if dirs.version == 1 else UNIFIED)
        return cls(files, _limit(f"{pids}/pids.max") if pids else None)

    def read(self, failed: Callable[[str, Exception], None], usage: bool) -> CgroupSample:
        """This cycle's figures, with CPU and memory usage when `usage`. A file that fails
        costs its fields and is reported to `failed`; one the kernel stops supporting (PSI
        switched off) is dropped quietly. Raises CgroupGoneError when the cgroup is gone."""
        sample = CgroupSample(time.time_ns(), threads_max=self.threads_max)
        unsupported = []
        for file in self.files:
            row = file.row
            if row.usage_only and not usage:
                continue
            try:
                content = file.handle.read()
                if content != file.content:
                    file.value = row.parse(content.decode())
                    file.content = content
            except OSError as exc:
                if exc.errno in GONE:
                    raise CgroupGoneError(file.handle.path) from exc
                if exc.errno in UNSUPPORTED:
                    unsupported.append(file)
                else:
                    failed(file.handle.path, exc)
                continue
            except (ValueError, UnicodeDecodeError) as exc:
                failed(file.handle.path, exc)
                continue
            row.take(sample, file.value)
        for file in unsupported:
            self.files.remove(file)
            file.handle.close()
        return sample

    def close(self) -> None:
        for file in self.files:
            file.handle.close()
        self.files = []


def _limit(path: str) -> int | None:
    """A limit read once (pids.max): None when unlimited ("max") or unreadable."""
    try:
        return parse_single_value(read_small(path))
    except (OSError, ValueError):
        return None
