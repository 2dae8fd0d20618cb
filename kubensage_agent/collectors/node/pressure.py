"""/proc/pressure/{cpu,memory,io,irq}: pressure stall information; none without PSI."""

from __future__ import annotations

from kubensage_agent.collectors.fill import fill_pressure, read_pressure_file
from kubensage_agent.collectors.node.base import NodeFiles
from kubensage_api.telemetry import telemetry_pb2 as tm

PSI_RESOURCES = ("cpu", "memory", "io", "irq")


def collect(files: NodeFiles, node: tm.Node) -> None:
    for resource in PSI_RESOURCES:
        stats = read_pressure_file(files.proc_path("pressure", resource))
        if stats is not None:
            fill_pressure(node.pressure.add(), resource, stats)
