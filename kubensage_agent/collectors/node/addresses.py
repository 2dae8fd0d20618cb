"""The node's IP addresses (getifaddrs in the agent's network namespace), loopback left out."""

from __future__ import annotations

import socket

import psutil

from kubensage_agent.collectors.node.base import NodeFiles
from kubensage_api.telemetry import telemetry_pb2 as tm


def collect(files: NodeFiles, node: tm.Node) -> None:
    for name, addrs in sorted(psutil.net_if_addrs().items()):
        if name == "lo":
            continue
        for addr in addrs:
            if addr.family in (socket.AF_INET, socket.AF_INET6):
                node.addresses.append(addr.address.split("%", 1)[0])
