"""/proc/stat's cpu lines: seconds per mode for the whole node and for each logical CPU."""

from __future__ import annotations

import os

from kubensage_agent.collectors.node.base import NodeFiles
from kubensage_agent.parsers.stat import parse_stat
from kubensage_api.telemetry import telemetry_pb2 as tm

# USER_HZ: the unit of /proc/stat's CPU times (100 on every Linux ABI in use)
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def collect(files: NodeFiles, node: tm.Node) -> None:
    stat = files.parsed(parse_stat, "stat")
    for mode, ticks in stat.total.ticks.items():
        node.cpu_seconds_by_mode[mode] = ticks / CLOCK_TICKS
    for line in stat.cpus:
        node.cpus.add(
            cpu=line.cpu, **{mode: ticks / CLOCK_TICKS for mode, ticks in line.ticks.items()}
        )
    # /proc/stat lists the online CPUs, as sysconf(_SC_NPROCESSORS_ONLN) counts them
    node.cpu_count = len(stat.cpus)
