"""Block device names as the kernel gives them (DEVNAME of /sys/dev/block/MAJ:MIN/uevent),
looked up once per device."""

from __future__ import annotations

from dataclasses import dataclass

from kubensage_agent.hostfs import HostPaths, read_small
from kubensage_agent.parsers.uevent import parse_uevent

# a node has tens of block devices; the bound only guards against a runaway source
MAX_DEVICES = 4096


@dataclass(frozen=True, slots=True)
class BlockDevice:
    name: str
    major: int
    minor: int


class DeviceNames:
    def __init__(self, paths: HostPaths) -> None:
        self.paths = paths
        self._known: dict[str, BlockDevice] = {}

    def lookup(self, number: str) -> BlockDevice:
        """The device "MAJ:MIN" (as cgroup files spell it); named "MAJ:MIN" when the
        node does not know it."""
        device = self._known.get(number)
        if device is None:
            device = self._find(number)
            if len(self._known) >= MAX_DEVICES:
                self._known.clear()
            self._known[number] = device
        return device

    def _find(self, number: str) -> BlockDevice:
        major, _, minor = number.partition(":")
        try:
            uevent = parse_uevent(read_small(self.paths.path(f"/sys/dev/block/{number}/uevent")))
        except (OSError, ValueError, UnicodeDecodeError):
            uevent = {}
        return BlockDevice(uevent.get("DEVNAME") or number, int(major), int(minor))
