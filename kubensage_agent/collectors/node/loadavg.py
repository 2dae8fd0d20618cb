"""/proc/loadavg: the 1, 5 and 15 minute load averages."""

from __future__ import annotations

from kubensage_agent.collectors.node.base import NodeFiles
from kubensage_agent.parsers.loadavg import parse_loadavg
from kubensage_api.telemetry import telemetry_pb2 as tm


def collect(files: NodeFiles, node: tm.Node) -> None:
    node.load.load1, node.load.load5, node.load.load15 = parse_loadavg(files.read("loadavg"))
