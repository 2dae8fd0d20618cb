"""The latest report per node, with duplicate suppression and expiry of silent nodes.

Prometheus sees exactly what the newest report of each live node says: pods and
containers absent from it are gone at once; a node disappears at once when its
stream closed cleanly (`leave`), else a grace period after its stream was lost or
after it has been silent for three of its intervals.
"""

from __future__ import annotations

import enum
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from kubensage_api.telemetry import telemetry_pb2 as tm

DEFAULT_INTERVAL_SECONDS = 10.0
SILENT_INTERVALS = 3
# How long the highest sequence of an agent that no longer reports is remembered.
AGENT_MEMORY_SECONDS = 3600.0


class Outcome(enum.Enum):
    ACCEPTED = "accepted"
    DUPLICATE = "duplicate"
    OUTDATED = "outdated"


@dataclass(frozen=True)
class NodeView:
    """One node as the exposition sees it; `report` is never mutated after it is stored."""

    node: str
    agent_id: str
    report: tm.Metrics
    received_at_unix: float
    connected: bool


@dataclass
class _Entry:
    agent_id: str
    report: tm.Metrics
    received_at: float
    received_at_unix: float


class NodeStore:
    def __init__(self, grace_seconds: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.grace_seconds = grace_seconds
        self._clock = clock
        self._nodes: dict[str, _Entry] = {}
        self._highest_sequence: dict[str, int] = {}
        self._agent_seen: dict[str, float] = {}
        self._connections: dict[str, int] = {}
        self._disconnected_at: dict[str, float] = {}
        self._lock = threading.Lock()

    def highest_sequence(self, agent_id: str) -> int:
        with self._lock:
            return self._highest_sequence.get(agent_id, 0)

    def accept(self, report: tm.Metrics) -> Outcome:
        """Store a report unless it repeats one already seen or is older than what is held."""
        now = self._clock()
        node = report.node.name
        with self._lock:
            if report.sequence <= self._highest_sequence.get(report.agent_id, 0):
                return Outcome.DUPLICATE
            self._highest_sequence[report.agent_id] = report.sequence
            self._agent_seen[report.agent_id] = now
            entry = self._nodes.get(node)
            if entry is not None and (
                report.collected_at_unix_nanos < entry.report.collected_at_unix_nanos
                and entry.agent_id == report.agent_id
            ):
                return Outcome.OUTDATED
            if entry is None or entry.agent_id != report.agent_id:
                self._nodes[node] = _Entry(report.agent_id, report, now, time.time())
            else:
                entry.report, entry.received_at, entry.received_at_unix = report, now, time.time()
            return Outcome.ACCEPTED

    def connected(self, node: str) -> None:
        with self._lock:
            self._connections[node] = self._connections.get(node, 0) + 1
            self._disconnected_at.pop(node, None)

    def disconnected(self, node: str) -> None:
        with self._lock:
            remaining = self._connections.get(node, 0) - 1
            if remaining > 0:
                self._connections[node] = remaining
                return
            self._connections.pop(node, None)
            self._disconnected_at[node] = self._clock()

    def leave(self, node: str) -> None:
        """A stream of the node closed cleanly: unless another one is open, drop it now.

        The agent ended the stream on purpose (stopping, or moving to another relay
        after a max-age close), so keeping its last report for a grace period would
        only make two relays serve the node at once.
        """
        with self._lock:
            if node not in self._connections:
                self._nodes.pop(node, None)

    def snapshot(self) -> list[NodeView]:
        """Live nodes, dropping those past their grace period."""
        now = self._clock()
        views = []
        with self._lock:
            for node, entry in list(self._nodes.items()):
                if self._expired(node, entry, now):
                    del self._nodes[node]
                    self._disconnected_at.pop(node, None)
                    continue
                views.append(
                    NodeView(
                        node=node,
                        agent_id=entry.agent_id,
                        report=entry.report,
                        received_at_unix=entry.received_at_unix,
                        connected=node in self._connections,
                    )
                )
            self._forget_old_agents(now)
        return views

    def _forget_old_agents(self, now: float) -> None:
        for node, closed_at in list(self._disconnected_at.items()):
            if node not in self._nodes and now - closed_at > self.grace_seconds:
                del self._disconnected_at[node]
        current = {entry.agent_id for entry in self._nodes.values()}
        for agent_id, seen in list(self._agent_seen.items()):
            if agent_id not in current and now - seen > AGENT_MEMORY_SECONDS:
                del self._agent_seen[agent_id]
                self._highest_sequence.pop(agent_id, None)

    def _expired(self, node: str, entry: _Entry, now: float) -> bool:
        closed_at = self._disconnected_at.get(node)
        if closed_at is not None and now - closed_at > self.grace_seconds:
            return True
        interval = entry.report.health.interval_seconds or DEFAULT_INTERVAL_SECONDS
        return now - entry.received_at > SILENT_INTERVALS * interval + self.grace_seconds

    def __len__(self) -> int:
        with self._lock:
            return len(self._nodes)
