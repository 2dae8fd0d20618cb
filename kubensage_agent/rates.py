"""CPU usage rates from two samples of the same container, never from one, never across a reset."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

NANOS = 1e9


@dataclass(frozen=True)
class _Sample:
    usage_ns: int
    timestamp_ns: int


class CpuRateTracker:
    """Keeps the previous cumulative sample per container id.

    A restarted container gets a new id from the runtime, so its first sample has
    no predecessor; a counter that goes backwards (runtime restart, id reuse) also
    yields no rate, only a fresh baseline.
    """

    def __init__(self) -> None:
        self._previous: dict[str, _Sample] = {}

    def observe(self, key: str, usage_ns: int, timestamp_ns: int) -> float | None:
        previous = self._previous.get(key)
        self._previous[key] = _Sample(usage_ns, timestamp_ns)
        if previous is None:
            return None
        elapsed = timestamp_ns - previous.timestamp_ns
        used = usage_ns - previous.usage_ns
        if elapsed <= 0 or used < 0:
            return None
        return used / elapsed

    def retain(self, keys: Iterable[str]) -> None:
        """Forget containers that are gone, so memory follows the live set."""
        live = set(keys)
        for key in list(self._previous):
            if key not in live:
                del self._previous[key]

    def __len__(self) -> int:
        return len(self._previous)


def cores_from_nano_cores(nano_cores: int) -> float:
    return nano_cores / NANOS
