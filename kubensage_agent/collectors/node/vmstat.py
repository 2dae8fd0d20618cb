"""/proc/vmstat: the counters node_exporter serves by default (page faults, paging,
swapping, OOM kills)."""

from __future__ import annotations

from kubensage_agent.collectors.node.base import NodeFiles
from kubensage_agent.parsers.vmstat import parse_vmstat
from kubensage_api.telemetry import telemetry_pb2 as tm

# node_exporter 1.5's --collector.vmstat.fields default, ^(oom_kill|pgpg|pswp|pg.*fault).*,
# matches exactly these on kernels up to 6.x
FIELDS = ("pgfault", "pgmajfault", "pgpgin", "pgpgout", "pswpin", "pswpout", "oom_kill")


def collect(files: NodeFiles, node: tm.Node) -> None:
    # oom_kill came in 4.13: older kernels leave it unset
    for field, value in parse_vmstat(files.read("vmstat"), FIELDS).items():
        setattr(node.vmstat, field, value)
