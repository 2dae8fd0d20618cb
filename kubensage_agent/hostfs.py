"""Paths on the host, seen through a configurable root (e.g. /host inside a DaemonSet pod)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class HostPaths:
    root: Path = Path("/")

    def path(self, absolute: str) -> Path:
        return self.root / absolute.lstrip("/")

    def proc(self, *parts: str) -> Path:
        return self.path("/proc").joinpath(*parts)

    def read(self, absolute: str) -> str:
        return self.path(absolute).read_text()
