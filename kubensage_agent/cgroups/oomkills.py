"""OOM kills per (pod sandbox, container name), kept across the container's restarts.

A container's cgroup counts the kills in its current attempt only, and is removed with
it; the kill that ends an attempt often lands after the last reading. So the count of a
(pod, container) is its current cgroup's count plus what earlier attempts seen by this
agent ended with: an attempt whose CRI reason is "OOMKilled" ended with at least one
more than the last reading taken while it ran. The sum never goes backwards while the
sandbox lives, and is dropped with it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

OOM_KILLED = "OOMKilled"


@dataclass
class _Attempt:
    last_running: int | None = None  # the last cgroup reading while it ran
    last: int | None = None  # the last cgroup reading at all
    oom_exit: bool = False  # exited with reason OOMKilled

    def total(self) -> int | None:
        if self.oom_exit:
            return max(self.last or 0, (self.last_running or 0) + 1)
        return self.last


@dataclass
class _Series:
    # what attempts no longer listed (and older than a listed one) ended with
    folded: int = 0
    attempts: dict[int, _Attempt] = field(default_factory=dict)

    def through(self, attempt: int) -> int | None:
        """Kills of every attempt up to and including `attempt`; None when nothing is known."""
        known = [a.total() for n, a in self.attempts.items() if n <= attempt]
        counted = [k for k in known if k is not None]
        if not counted and not self.folded:
            return None
        return self.folded + sum(counted)


Key = tuple[str, str]  # (sandbox id, container name)


class OomKillLedger:
    def __init__(self) -> None:
        self._series: dict[Key, _Series] = {}

    def observe(
        self,
        key: Key,
        attempt: int,
        *,
        running: bool,
        reading: int | None,
        reason: str,
    ) -> None:
        """One cycle's view of one attempt: its cgroup reading (None when unread) and,
        once exited, the runtime's reason."""
        state = self._series.setdefault(key, _Series()).attempts.setdefault(attempt, _Attempt())
        if reading is not None:
            state.last = reading
            if running:
                state.last_running = reading
        if not running and reason == OOM_KILLED:
            state.oom_exit = True

    def count(self, key: Key, attempt: int) -> int | None:
        series = self._series.get(key)
        return series.through(attempt) if series is not None else None

    def retain(self, listed: Iterable[tuple[Key, int]], sandboxes: Iterable[str]) -> None:
        """Forget the series of sandboxes that are gone; fold attempts the runtime no
        longer lists into their series once a newer attempt is listed (no new readings
        can come for them), so the state stays a few entries per container."""
        live_sandboxes = set(sandboxes)
        newest: dict[Key, int] = {}
        shown = set()
        for key, attempt in listed:
            shown.add((key, attempt))
            newest[key] = max(newest.get(key, attempt), attempt)
        for key in list(self._series):
            if key[0] not in live_sandboxes:
                del self._series[key]
                continue
            series = self._series[key]
            for number in [n for n in series.attempts if (key, n) not in shown]:
                if number < newest.get(key, -1):
                    series.folded += series.attempts.pop(number).total() or 0
