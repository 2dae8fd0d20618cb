"""/proc/sys/fs/file-nr: file handles the kernel has allocated, and the maximum."""

from __future__ import annotations

from kubensage_agent.collectors.node.base import NodeFiles
from kubensage_agent.parsers.filenr import parse_file_nr
from kubensage_api.telemetry import telemetry_pb2 as tm


def collect(files: NodeFiles, node: tm.Node) -> None:
    handles = parse_file_nr(files.read("sys", "fs", "file-nr"))
    node.file_descriptors.allocated = handles.allocated
    node.file_descriptors.maximum = handles.maximum
