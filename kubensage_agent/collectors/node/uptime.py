"""/proc/uptime: seconds since boot (CLOCK_BOOTTIME, so suspend counts)."""

from __future__ import annotations

from kubensage_agent.collectors.node.base import NodeFiles
from kubensage_agent.parsers.uptime import parse_uptime
from kubensage_api.telemetry import telemetry_pb2 as tm


def collect(files: NodeFiles, node: tm.Node) -> None:
    node.uptime_seconds = parse_uptime(files.read("uptime"))
