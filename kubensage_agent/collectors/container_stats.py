"""A container's figures from the two sources that give them: the runtime (CRI stats) and
the container's cgroup.

Where both give the same figure (CPU usage, the memory working set group, swap, PSI),
`pick_source` decides by the policy's order (collectors/stats_policy.py: the cgroup first
by default, since the agent reads it anyway and the runtime's answer costs the node), and
the report says which source was used. A container whose host cgroup does not reflect it
(VM-isolated runtimes) has no cgroup sample at all, so it keeps CRI whatever the order.
"""

from __future__ import annotations

import time
from typing import Literal, get_args

from kubensage_agent.cgroups.devices import DeviceNames
from kubensage_agent.cgroups.reader import CgroupSample
from kubensage_agent.collectors.fill import fill_pressure
from kubensage_agent.collectors.stats_policy import CGROUP, CRI, Source
from kubensage_agent.parsers.pressure import PressureLine, PressureStats
from kubensage_agent.rates import CpuRateTracker, cores_from_nano_cores
from kubensage_api.cri import api_pb2
from kubensage_api.telemetry import telemetry_pb2 as tm

NANOS = 1_000_000_000
# runtime handlers and shims whose containers run in a VM or a user-space kernel: the
# host cgroup holds the sandbox (or nothing), not the container
VM_ISOLATED_MARKERS = ("kata", "runsc", "gvisor", "firecracker")
MemoryField = Literal[
    "working_set_bytes",
    "usage_bytes",
    "rss_bytes",
    "available_bytes",
    "page_faults",
    "major_page_faults",
]
CRI_MEMORY_FIELDS: tuple[MemoryField, ...] = get_args(MemoryField)


def pick_source(cri_has: bool, cgroup_has: bool, order: tuple[Source, Source]) -> str:
    """Where a figure both sources can give comes from: "cri", "cgroup", or "" for neither."""
    for source in order:  # spelled out: called several times per container per cycle
        if cri_has if source == CRI else cgroup_has:
            return source
    return ""


def cgroup_usage_wanted(stats: api_pb2.ContainerStats | None, order: tuple[Source, Source]) -> bool:
    """Whether to read CPU and memory usage from the cgroup this cycle: only when
    `pick_source` would take the cgroup's figure over what the runtime gave."""
    return CGROUP in (
        pick_source(_cri_cpu(stats) is not None, True, order),
        pick_source(_cri_memory(stats) is not None, True, order),
    )


def _cri_cpu(stats: api_pb2.ContainerStats | None) -> api_pb2.CpuUsage | None:
    if stats is None or not stats.HasField("cpu"):
        return None
    return stats.cpu if stats.cpu.HasField("usage_core_nano_seconds") else None


def _cri_memory(stats: api_pb2.ContainerStats | None) -> api_pb2.MemoryUsage | None:
    if stats is None or not stats.HasField("memory"):
        return None
    memory = stats.memory
    return memory if any(memory.HasField(name) for name in CRI_MEMORY_FIELDS) else None


def host_cgroup_reflects(runtime_handler: str, runtime_type: str) -> bool:
    """Whether the container's host cgroup counts the container itself (not a VM around it)."""
    names = f"{runtime_handler} {runtime_type}".lower()
    return not any(marker in names for marker in VM_ISOLATED_MARKERS)


def fill_stats(
    out: tm.Container,
    stats: api_pb2.ContainerStats | None,
    sample: CgroupSample | None,
    rates: CpuRateTracker,
    devices: DeviceNames,
    *,
    order: tuple[Source, Source],
) -> None:
    """Every figure of a container from CRI `stats` and its cgroup `sample` (either may be
    missing), the first of `order` winning where both give it; `out` already carries the
    container's identity and limits. The writable layer is the caller's: it is carried
    between the runtime's answers."""
    cpu = stats.cpu if stats is not None and stats.HasField("cpu") else None
    _cpu(out, cpu, sample, rates, order)
    _memory(out, _cri_memory(stats), sample, order)
    _swap(out, stats, sample, order)
    _pressure(out, stats, sample, order)
    if sample is not None:
        _cgroup_only(out, sample, devices)


def fill_filesystem(target: tm.FilesystemUsage, usage: api_pb2.FilesystemUsage) -> None:
    target.mountpoint = usage.fs_id.mountpoint
    if usage.HasField("used_bytes"):
        target.used_bytes = usage.used_bytes.value
    if usage.HasField("inodes_used"):
        target.inodes_used = usage.inodes_used.value


def _cpu(
    out: tm.Container,
    cpu: api_pb2.CpuUsage | None,
    sample: CgroupSample | None,
    rates: CpuRateTracker,
    order: tuple[Source, Source],
) -> None:
    from_cri = cpu is not None and cpu.HasField("usage_core_nano_seconds")
    source = pick_source(from_cri, sample is not None and sample.usage_ns is not None, order)
    if source == CRI and cpu is not None:
        usage_ns, timestamp = cpu.usage_core_nano_seconds.value, cpu.timestamp or time.time_ns()
    elif source == CGROUP and sample is not None and sample.usage_ns is not None:
        usage_ns, timestamp = sample.usage_ns, sample.read_at_ns
    else:
        return
    out.cpu.usage_seconds_total = usage_ns / NANOS
    out.cpu.source = source
    rate = rates.observe(out.id, usage_ns, timestamp)
    # the rate follows the usage's source: the runtime's own rate (what `kubectl top`
    # shows) with the runtime's usage, else one computed from two samples of the same
    # counter the runtime reads, over the agent's interval
    runtime_rate = (
        source == CRI
        and cpu is not None
        and cpu.HasField("usage_nano_cores")
        and cpu.usage_nano_cores.value > 0
    )
    if runtime_rate and cpu is not None:
        out.cpu.usage_cores = cores_from_nano_cores(cpu.usage_nano_cores.value)
        out.cpu.rate_source = "runtime"
    elif rate is not None:
        out.cpu.usage_cores = rate
        out.cpu.rate_source = "computed"


def _memory(
    out: tm.Container,
    memory: api_pb2.MemoryUsage | None,
    sample: CgroupSample | None,
    order: tuple[Source, Source],
) -> None:
    working_set = sample.working_set() if sample is not None else None
    source = pick_source(memory is not None, working_set is not None, order)
    target = out.memory
    if source == CRI and memory is not None:
        for name in CRI_MEMORY_FIELDS:
            if memory.HasField(name):
                setattr(target, name, getattr(memory, name).value)
    elif source == CGROUP and sample is not None and working_set is not None:
        target.working_set_bytes = working_set
        if sample.memory_usage is not None:
            target.usage_bytes = sample.memory_usage
        stat = sample.memory_stat
        if stat is not None:
            _set_present(target, "rss_bytes", stat.rss)
            _set_present(target, "page_faults", stat.page_faults)
            _set_present(target, "major_page_faults", stat.major_page_faults)
        if out.limits.HasField("memory_bytes"):
            target.available_bytes = max(out.limits.memory_bytes - working_set, 0)
    else:
        return
    target.source = source


def _swap(
    out: tm.Container,
    stats: api_pb2.ContainerStats | None,
    sample: CgroupSample | None,
    order: tuple[Source, Source],
) -> None:
    from_cri = (
        stats is not None and stats.HasField("swap") and stats.swap.HasField("swap_usage_bytes")
    )
    swap = sample.swap() if sample is not None else None
    source = pick_source(from_cri, swap is not None, order)
    if source == CRI and stats is not None:
        out.swap_usage_bytes = stats.swap.swap_usage_bytes.value
    elif source == CGROUP and swap is not None:
        out.swap_usage_bytes = swap


def _psi_from_cri(psi: api_pb2.PsiStats) -> PressureStats:
    def line(data: api_pb2.PsiData) -> PressureLine:
        return PressureLine(data.avg10, data.avg60, data.avg300, data.total / NANOS)

    return PressureStats(
        some=line(psi.some) if psi.HasField("some") else None,
        full=line(psi.full) if psi.HasField("full") else None,
    )


def _pressure(
    out: tm.Container,
    stats: api_pb2.ContainerStats | None,
    sample: CgroupSample | None,
    order: tuple[Source, Source],
) -> None:
    from_cri = [
        (resource, usage.psi)
        for resource, usage in (
            (("cpu", stats.cpu), ("memory", stats.memory), ("io", stats.io))
            if stats is not None
            else ()
        )
        if usage.HasField("psi")
    ]
    source = pick_source(bool(from_cri), sample is not None and bool(sample.pressure), order)
    if source == CRI:
        for resource, psi in from_cri:
            fill_pressure(out.pressure.add(), resource, _psi_from_cri(psi))
    elif source == CGROUP and sample is not None:
        for resource, pressure in sample.pressure:
            fill_pressure(out.pressure.add(), resource, pressure)


def _set_present(target: object, name: str, value: int | float | None) -> None:
    if value is not None:
        setattr(target, name, value)


def _cgroup_only(out: tm.Container, sample: CgroupSample, devices: DeviceNames) -> None:
    """Figures CRI does not carry: CPU modes and CFS throttling, page cache and memory
    events, block I/O per device, tasks. OOM kills are added per (pod, container) later."""
    cpu = out.cpu
    _set_present(cpu, "user_seconds_total", sample.user_seconds)
    _set_present(cpu, "system_seconds_total", sample.system_seconds)
    _set_present(cpu, "cfs_periods_total", sample.cfs_periods)
    _set_present(cpu, "cfs_throttled_periods_total", sample.cfs_throttled_periods)
    _set_present(cpu, "cfs_throttled_seconds_total", sample.cfs_throttled_seconds)
    memory = out.memory
    stat = sample.memory_stat
    if stat is not None:
        _set_present(memory, "cache_bytes", stat.cache)
        _set_present(memory, "mapped_file_bytes", stat.mapped_file)
    _set_present(memory, "max_usage_bytes", sample.max_usage)
    _set_present(memory, "limit_hits", sample.limit_hits)
    _set_present(memory, "high_events", sample.high_events)
    for number, io in sorted(sample.block_io()):
        device = devices.lookup(number)
        entry = out.block_io.add(device=device.name, major=device.major, minor=device.minor)
        _set_present(entry, "reads", io.reads)
        _set_present(entry, "writes", io.writes)
        _set_present(entry, "read_bytes", io.read_bytes)
        _set_present(entry, "written_bytes", io.written_bytes)
    _set_present(out.tasks, "threads", sample.threads)
    _set_present(out.tasks, "threads_max", sample.threads_max)
