"""/proc/diskstats: I/O counters per block device, in bytes and seconds, named as the
kernel (and node_exporter) names them. Partitions and virtual devices are left out by
default with node_exporter's pattern, so a disk's I/O is not counted twice."""

from __future__ import annotations

from dataclasses import dataclass, field

from kubensage_agent.collectors.errors import CollectorErrors
from kubensage_agent.collectors.node.base import NodeFiles, Step, compile_pattern
from kubensage_agent.parsers.diskstats import parse_diskstats
from kubensage_api.telemetry import telemetry_pb2 as tm

# node_exporter v1.5.0, collector/diskstats_linux.go diskstatsDefaultIgnoredDevices
DEFAULT_DEVICE_EXCLUDE = r"^(ram|loop|fd|(h|s|v|xv)d[a-z]|nvme\d+n\d+p)\d+$"
SECTOR_BYTES = 512
MILLIS = 1000.0


@dataclass(frozen=True)
class DiskstatsConfig:
    device_exclude: str = field(
        default=DEFAULT_DEVICE_EXCLUDE,
        metadata={"help": "Regex of block devices to leave out (partitions, ram, loop)."},
    )

    def validate(self) -> None:
        compile_pattern(self.device_exclude, "device-exclude")


class DiskstatsCollector:
    def __init__(self, config: DiskstatsConfig) -> None:
        self.exclude = compile_pattern(config.device_exclude, "device-exclude")

    def __call__(self, files: NodeFiles, node: tm.Node) -> None:
        for disk in parse_diskstats(files.read("diskstats")):
            if self.exclude.search(disk.device):
                continue
            out = node.disks.add(
                device=disk.device,
                reads_completed=disk.reads_completed,
                reads_merged=disk.reads_merged,
                read_bytes=disk.sectors_read * SECTOR_BYTES,
                read_time_seconds=disk.read_time_ms / MILLIS,
                writes_completed=disk.writes_completed,
                writes_merged=disk.writes_merged,
                written_bytes=disk.sectors_written * SECTOR_BYTES,
                write_time_seconds=disk.write_time_ms / MILLIS,
                io_now=disk.io_in_progress,
                io_time_seconds=disk.io_time_ms / MILLIS,
                io_time_weighted_seconds=disk.io_weighted_time_ms / MILLIS,
            )
            if disk.discards is not None:
                out.discards_completed = disk.discards.completed
                out.discards_merged = disk.discards.merged
                out.discarded_sectors = disk.discards.sectors
                out.discard_time_seconds = disk.discards.time_ms / MILLIS
            if disk.flushes is not None:
                out.flush_requests = disk.flushes.requests
                out.flush_time_seconds = disk.flushes.time_ms / MILLIS


def build(config: DiskstatsConfig, _errors: CollectorErrors) -> Step:
    return DiskstatsCollector(config)
