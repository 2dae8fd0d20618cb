"""/proc/stat beyond CPU time: boot time, context switches, forks, interrupts, and the
processes running and blocked right now."""

from __future__ import annotations

from kubensage_agent.collectors.node.base import NANOS, NodeFiles
from kubensage_agent.parsers.stat import parse_stat
from kubensage_api.telemetry import telemetry_pb2 as tm


def collect(files: NodeFiles, node: tm.Node) -> None:
    stat = files.parsed(parse_stat, "stat")
    figures = {
        "context_switches": stat.context_switches,
        "forks": stat.forks,
        "interrupts": stat.interrupts,
        "procs_running": stat.procs_running,
        "procs_blocked": stat.procs_blocked,
    }
    for field, value in figures.items():
        if value is not None:
            setattr(node, field, value)
    if stat.boot_time is not None:
        node.boot_time_unix_nanos = stat.boot_time * NANOS
    missing = [field for field, value in figures.items() if value is None]
    if stat.boot_time is None:
        missing.append("boot_time")
    if missing:
        raise ValueError(f"/proc/stat lacks {', '.join(missing)}")
