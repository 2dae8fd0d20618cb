"""Paths on the host, seen through a configurable root (e.g. /host inside a DaemonSet pod)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

SMALL_FILE_BYTES = 65536


def read_small_bytes(path: str | os.PathLike[str]) -> bytes:
    """A whole small kernel file with two syscalls; per-container files are read every
    cycle, where pathlib and buffered text I/O cost more than the read itself."""
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        return os.read(fd, SMALL_FILE_BYTES)
    finally:
        os.close(fd)


def read_small(path: str | os.PathLike[str]) -> str:
    return read_small_bytes(path).decode()


def read_whole(path: str | os.PathLike[str]) -> str:
    """A kernel file that may outgrow one read: seq_file hands out a page's worth of
    records per read(2), so /proc/<pid>/mounts on a busy node takes several."""
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        chunks = []
        while chunk := os.read(fd, SMALL_FILE_BYTES):
            chunks.append(chunk)
        return b"".join(chunks).decode()
    finally:
        os.close(fd)


@dataclass(frozen=True)
class HostPaths:
    root: Path = Path("/")

    def path(self, absolute: str) -> Path:
        return self.root / absolute.lstrip("/")

    def proc(self, *parts: str) -> Path:
        return self.path("/proc").joinpath(*parts)

    def read(self, absolute: str) -> str:
        return self.path(absolute).read_text()
