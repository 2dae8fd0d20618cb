"""CPU time and memory of a process from /proc, for measuring other processes."""

from __future__ import annotations

import contextlib
import os
import subprocess
import time
from pathlib import Path

from kubensage_lab.processes import memory_kib

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
    return memory_kib(pid)["VmRSS"] * 1024


def median(values: list[float]) -> float:
    ordered = sorted(values)
    middle = len(ordered) // 2
    if len(ordered) % 2:
        return ordered[middle]
    return (ordered[middle - 1] + ordered[middle]) / 2


def wait_for_peak_rss(process: subprocess.Popen[bytes], limit_seconds: float) -> int:
    """Wait for `process` to end (killed after `limit_seconds`) and return its peak RSS in
    bytes, from its own VmHWM read while it runs. Not the rusage of wait4: Linux carries
    the parent's high-water mark into a child across fork and exec, so a large bench
    process would be counted as the child's peak."""
    deadline = time.monotonic() + limit_seconds
    peak = 0
    while process.poll() is None:
        if time.monotonic() > deadline:
            process.kill()
        # OSError: it exited between poll and read; KeyError: a zombie has no memory lines
        with contextlib.suppress(OSError, KeyError):
            peak = max(peak, memory_kib(process.pid)["VmHWM"] * 1024)
        time.sleep(0.05)
    return peak
