"""The wall clock and the agent's local time zone, so the relay can tell a skewed node."""

from __future__ import annotations

import time

from kubensage_agent.collectors.node.base import NodeFiles
from kubensage_api.telemetry import telemetry_pb2 as tm


def collect(files: NodeFiles, node: tm.Node) -> None:
    now = time.time()
    local = time.localtime(now)
    node.clock.time_seconds = now
    node.clock.time_zone = local.tm_zone
    node.clock.time_zone_offset_seconds = local.tm_gmtoff
