"""/proc/meminfo: every field as the kernel names it, and the memory summary."""

from __future__ import annotations

from kubensage_agent.collectors.node.base import NodeFiles
from kubensage_agent.parsers.meminfo import parse_meminfo
from kubensage_api.telemetry import telemetry_pb2 as tm


def fill_summary(memory: tm.NodeMemory, fields: dict[str, int]) -> None:
    """The summary as psutil's virtual_memory() and swap_memory() compute it, so the
    figures stay what they were: cached includes the reclaimable slab (as free(1)), and
    an available above total (a container's view) falls back to free. A kernel without a
    usable MemAvailable (before 3.14) reports no available memory rather than a guess."""
    total, free = fields["MemTotal"], fields.get("MemFree")
    memory.total_bytes = total
    if free is not None:
        memory.free_bytes = free
    if "Buffers" in fields:
        memory.buffers_bytes = fields["Buffers"]
    if "Cached" in fields:
        memory.cached_bytes = fields["Cached"] + fields.get("SReclaimable", 0)
    available = fields.get("MemAvailable", 0)
    if available > total and free is not None:
        available = free
    if available > 0:
        memory.available_bytes = available
    if "SwapTotal" in fields and "SwapFree" in fields:
        memory.swap_total_bytes = fields["SwapTotal"]
        memory.swap_free_bytes = fields["SwapFree"]


def collect(files: NodeFiles, node: tm.Node) -> None:
    fields = parse_meminfo(files.read("meminfo"))
    node.meminfo.update(fields)
    fill_summary(node.memory, fields)
