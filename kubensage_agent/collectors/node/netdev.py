"""/proc/net/dev: all sixteen counters of every interface in the agent's network
namespace, which is the node's when the agent runs with hostNetwork (as deployed)."""

from __future__ import annotations

from kubensage_agent.collectors.fill import fill_interface
from kubensage_agent.collectors.node.base import NodeFiles
from kubensage_agent.parsers.netdev import InterfaceCounters, parse_net_dev
from kubensage_api.telemetry import telemetry_pb2 as tm


def fill_details(target: tm.NetworkInterface, counters: InterfaceCounters) -> None:
    """The columns only the node's interfaces report (node_exporter serves them all)."""
    target.receive_fifo = counters.receive_fifo
    target.receive_frame = counters.receive_frame
    target.receive_compressed = counters.receive_compressed
    target.receive_multicast = counters.receive_multicast
    target.transmit_fifo = counters.transmit_fifo
    target.transmit_collisions = counters.transmit_collisions
    target.transmit_carrier = counters.transmit_carrier
    target.transmit_compressed = counters.transmit_compressed


def collect(files: NodeFiles, node: tm.Node) -> None:
    for counters in parse_net_dev(files.read("net", "dev")):
        target = node.interfaces.add()
        fill_interface(target, counters)
        fill_details(target, counters)
