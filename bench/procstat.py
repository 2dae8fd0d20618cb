"""CPU time and memory of a process from /proc, for measuring other processes."""

from __future__ import annotations

import os
from pathlib import Path

TICKS = os.sysconf("SC_CLK_TCK")


def _stat_fields(pid: int) -> list[str]:
    # after the parenthesised command, fields start at state (field 3 of proc(5))
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()


def cpu_seconds(pid: int) -> float:
    """User + system CPU of `pid` (all threads) so far."""
    fields = _stat_fields(pid)
    utime, stime = int(fields[11]), int(fields[12])
    return (utime + stime) / TICKS


def cpu_seconds_with_children(pid: int) -> float:
    """CPU of `pid` plus that of its children it has reaped (a shim's `runc` execs)."""
    fields = _stat_fields(pid)
    utime, stime, cutime, cstime = (int(value) for value in fields[11:15])
    return (utime + stime + cutime + cstime) / TICKS


def rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise ValueError(f"no VmRSS for {pid}")


def median(values: list[float]) -> float:
    ordered = sorted(values)
    middle = len(ordered) // 2
    if len(ordered) % 2:
        return ordered[middle]
    return (ordered[middle - 1] + ordered[middle]) / 2
