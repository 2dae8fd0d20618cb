"""Which CRI stats calls a cycle makes, and which source wins where the runtime and the
container's cgroup both give a figure.

What the agent asks the runtime costs the runtime, and that cost is charged to the node,
not to the agent: containerd 1.6 answers ListPodSandboxStats by exec'ing `runc ps` once per
sandbox (~10 ms of runtime CPU each) and ListContainerStats at ~2.4 ms per container. The
agent reads CPU, memory, swap and PSI from the cgroup it already reads, and pod network
from /proc/<sandbox pid>/net/dev, so by default it asks the runtime only for what only the
runtime knows (writable layer, image filesystem), at a slow cadence, and asks for pod
stats only for pods it cannot read itself, every cycle only while the runtime answers
cheaply. Every answer's cost is measured (its wall time, which for a runtime that execs
per item is its CPU time), so the decision follows the runtime, not its name.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Source = Literal["cri", "cgroup"]
CRI: Source = "cri"
CGROUP: Source = "cgroup"
SOURCES: tuple[Source, ...] = (CGROUP, CRI)
# An answer is cheap when it took at most this long, plus this long per item it carried:
# a runtime answering from its own cache (CRI-O, containerd 2.x) stays far below, one that
# execs per item (containerd 1.x: ~10 ms per sandbox) far above; the margin is for a
# loaded node, where wall time runs long.
CHEAP_CALL_SECONDS = 0.02
CHEAP_SECONDS_PER_ITEM = 0.002
DEFAULT_CRI_STATS_INTERVAL = 300.0


@dataclass(frozen=True)
class StatsPolicy:
    """`prefer`: the source taken first where both give a figure (CPU, memory, swap, PSI,
    pod network). `cri_stats_interval`: seconds between the calls that fetch what only the
    runtime knows (ListContainerStats for the writable layer, ImageFsInfo) and between
    re-measurements of an expensive ListPodSandboxStats; 0 makes every CRI stats call
    every cycle."""

    prefer: Source = CGROUP
    cri_stats_interval: float = DEFAULT_CRI_STATS_INTERVAL

    @property
    def order(self) -> tuple[Source, Source]:
        return (CRI, CGROUP) if self.prefer == CRI else (CGROUP, CRI)

    @property
    def every_cycle(self) -> bool:
        return self.cri_stats_interval <= 0


# Every CRI stats call every cycle and the runtime's figures first: how the agent
# collected before it measured the runtime's cost, kept for comparison and for runtimes
# whose answers are wanted as they are.
LEGACY = StatsPolicy(prefer=CRI, cri_stats_interval=0.0)


def is_cheap(seconds: float, items: int) -> bool:
    return seconds <= CHEAP_CALL_SECONDS + CHEAP_SECONDS_PER_ITEM * items


class CallSchedule:
    """When one costly CRI call is next made: due once per interval; with interval 0, every
    cycle. Unless `in_first_cycle`, never in the agent's first cycle (kept cheap so the
    first report goes out at once) unless something needs it."""

    def __init__(self, interval: float, *, in_first_cycle: bool = False) -> None:
        self.interval = interval
        self.last_at: float | None = None
        self.first_cycle_passed = in_first_cycle
        self.cheap = False

    def due(self, now: float) -> bool:
        if self.interval <= 0:
            return True
        if self.last_at is not None:
            return now - self.last_at >= self.interval
        if not self.first_cycle_passed:
            self.first_cycle_passed = True
            return False
        return True

    def needed_and_affordable(self, needed: bool, now: float) -> bool:
        """For a call made only when something has its figures from nowhere else: made
        every cycle while its last answer was cheap, else once per interval (which also
        measures it again)."""
        due = self.due(now)
        return needed and (due or self.cheap or self.last_at is None)

    def measured(self, now: float, seconds: float, items: int) -> None:
        self.last_at = now
        self.cheap = is_cheap(seconds, items)
