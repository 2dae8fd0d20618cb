"""/proc/sys/net/netfilter/nf_conntrack_{count,max}: connection tracking entries and limit.

/proc/sys/net answers for the network namespace of the process that reads it, whatever
procfs mount it goes through: with hostNetwork (as deployed) that is the node's. The
count is per namespace; the limit is global. Without the conntrack module loaded the
files do not exist and nothing is reported.
"""

from __future__ import annotations

from kubensage_agent.collectors.node.base import NodeFiles
from kubensage_agent.parsers.sysctl import parse_sysctl_integer
from kubensage_api.telemetry import telemetry_pb2 as tm


def collect(files: NodeFiles, node: tm.Node) -> None:
    try:
        entries = parse_sysctl_integer(files.read("sys", "net", "netfilter", "nf_conntrack_count"))
        limit = parse_sysctl_integer(files.read("sys", "net", "netfilter", "nf_conntrack_max"))
    except FileNotFoundError:
        return
    node.conntrack.entries = entries
    node.conntrack.limit = limit
