"""uname(2) of the agent's UTS namespace (the node's with hostNetwork) and the NIS
domain name, which uname's Python binding leaves out."""

from __future__ import annotations

import os

from kubensage_agent.collectors.node.base import NodeFiles
from kubensage_api.telemetry import telemetry_pb2 as tm


def collect(files: NodeFiles, node: tm.Node) -> None:
    uname = os.uname()
    node.hostname = uname.nodename
    node.uname_sysname = uname.sysname
    node.kernel_release = uname.release
    node.kernel_version = uname.version
    node.architecture = uname.machine
    # "(none)" when unset, as uname(2) reports it
    node.uname_domainname = files.read("sys", "kernel", "domainname").strip()
