"""/proc/stat: CPU time per mode (whole node and each logical CPU) and the kernel's
process and interrupt counters (see the kernel's Documentation/filesystems/proc.rst).

CPU times stay in clock ticks (USER_HZ) here; the collector turns them into seconds.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

# The columns of a cpu line in kernel order; older kernels stop early (steal came in
# 2.6.11, guest in 2.6.24, guest_nice in 2.6.33), newer ones may append columns we skip.
CPU_MODES = (
    "user",
    "nice",
    "system",
    "idle",
    "iowait",
    "irq",
    "softirq",
    "steal",
    "guest",
    "guest_nice",
)
# user, nice, system and idle: what every kernel since 2.4 prints.
MIN_CPU_COLUMNS = 4


class CpuTicks(NamedTuple):
    """One cpu line: `cpu` is "" for the node's total, else the CPU number ("0", "1")."""

    cpu: str
    ticks: dict[str, int]


@dataclass(frozen=True, slots=True)
class KernelStat:
    total: CpuTicks
    cpus: list[CpuTicks]
    # `intr`: interrupts serviced since boot (first number of the line)
    interrupts: int | None
    # `ctxt`: context switches since boot
    context_switches: int | None
    # `btime`: boot time, seconds since the epoch
    boot_time: int | None
    # `processes`: forks since boot
    forks: int | None
    procs_running: int | None
    procs_blocked: int | None


def _cpu_line(label: str, values: list[str], raw: str) -> CpuTicks:
    if len(values) < MIN_CPU_COLUMNS:
        raise ValueError(f"truncated cpu line in stat {raw!r}")
    try:
        ticks = {mode: int(value) for mode, value in zip(CPU_MODES, values, strict=False)}
    except ValueError as exc:
        raise ValueError(f"non-numeric cpu line in stat {raw!r}") from exc
    return CpuTicks(cpu=label.removeprefix("cpu"), ticks=ticks)


def _first_number(rest: str, raw: str) -> int:
    # `intr` and `softirq` carry one number per source after the total: only the total
    # is wanted, and the line can hold thousands of numbers on large machines.
    total = rest.split(None, 1)[0] if rest.strip() else ""
    try:
        return int(total)
    except ValueError as exc:
        raise ValueError(f"malformed stat line {raw!r}") from exc


def parse_stat(text: str) -> KernelStat:
    total: CpuTicks | None = None
    cpus: list[CpuTicks] = []
    counters: dict[str, int] = {}
    for raw in text.splitlines():
        label, _, rest = raw.partition(" ")
        if label == "cpu":
            total = _cpu_line(label, rest.split(), raw)
        elif label.startswith("cpu"):
            if not label[3:].isdigit():
                raise ValueError(f"malformed cpu label in stat {raw!r}")
            cpus.append(_cpu_line(label, rest.split(), raw))
        elif label in ("intr", "ctxt", "btime", "processes", "procs_running", "procs_blocked"):
            counters[label] = _first_number(rest, raw)
    if total is None:
        raise ValueError("not a stat file: no aggregate cpu line")
    return KernelStat(
        total=total,
        cpus=cpus,
        interrupts=counters.get("intr"),
        context_switches=counters.get("ctxt"),
        boot_time=counters.get("btime"),
        forks=counters.get("processes"),
        procs_running=counters.get("procs_running"),
        procs_blocked=counters.get("procs_blocked"),
    )
