"""The agent's id (a UUID made once and kept) and sequence numbers that never repeat."""

from __future__ import annotations

import uuid
from pathlib import Path

from kubensage_agent.state.files import write_atomically

SEQUENCE_BLOCK = 64


def load_or_create_agent_id(path: Path) -> str:
    """Reuse the id in `path`; create and persist a new UUID when there is none."""
    try:
        existing = path.read_text().strip()
    except FileNotFoundError:
        existing = ""
    if existing:
        return existing
    agent_id = str(uuid.uuid4())
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomically(path, f"{agent_id}\n".encode())
    return agent_id


class SequenceAllocator:
    """Hands out increasing sequence numbers that stay increasing across restarts.

    The file holds the end of the reserved block, written before any number of
    that block is used; a restart continues after the block, so a crash can skip
    numbers but never reuse one. One fsync per block, not per report.
    """

    def __init__(self, path: Path | None, block: int = SEQUENCE_BLOCK, floor: int = 0) -> None:
        self.path = path
        self.block = block
        start = max(floor, self._read())
        self._next = start + 1
        self._reserved = start

    def _read(self) -> int:
        if self.path is None:
            return 0
        try:
            return int(self.path.read_text().strip() or 0)
        except FileNotFoundError:
            return 0
        except ValueError as exc:
            raise ValueError(f"sequence file {self.path} is damaged: {exc}") from exc

    def next(self) -> int:
        if self._next > self._reserved:
            self._reserved = self._next + self.block - 1
            if self.path is not None:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                write_atomically(self.path, f"{self._reserved}\n".encode())
        value = self._next
        self._next += 1
        return value

    @property
    def last(self) -> int:
        return self._next - 1
