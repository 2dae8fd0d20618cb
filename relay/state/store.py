"""The latest report per node: which report is current, which agent holds a node, and
sequence numbers that survive agent restarts.

Prometheus sees exactly what the newest report of each live node says: pods and
containers absent from it are gone at once; a node disappears at once when the
stream holding it closed cleanly (the agent stopped, or moved to another relay after a
max-age close), else a grace period after its stream was lost or after it has been
silent for three of its intervals.

Every report gets one `Outcome` from `accept`, the single decision of this module:
- rejected (not acknowledged as data): a repeat of a sequence already taken, a
  sequence far ahead of what the agent said it had produced, a collection time in
  the future beyond the allowed clock skew or older than `max_report_age_seconds`;
- accepted and current: installed as the node's state;
- accepted but late (`Outcome.late`): older than what the node already shows here,
  or older than the staleness window (a spooled backlog, or a replay reaching a
  replica that never saw the newer reports). It is acknowledged and never served as
  current; whoever keeps history (remote write) takes every `outcome.accepted` report.
"""

from __future__ import annotations

import enum
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from kubensage_api.telemetry import telemetry_pb2 as tm

DEFAULT_INTERVAL_SECONDS = 10.0
SILENT_INTERVALS = 3
# How long the highest sequence of an agent that no longer reports is remembered.
AGENT_MEMORY_SECONDS = 3600.0
# The agent's shortest interval is 0.2 s: a stream cannot honestly run ahead of its
# hello's last_sequence by more than this many reports per second (plus the slack).
MAX_REPORTS_PER_SECOND = 5.0
SEQUENCE_SLACK = 1024
DEFAULT_MAX_CLOCK_SKEW_SECONDS = 120.0
# Above the agent's default spool age (an hour): a backlog is still accepted (late).
DEFAULT_MAX_REPORT_AGE_SECONDS = 7200.0
NANOS = 1e9


class Outcome(enum.Enum):
    ACCEPTED = "accepted"  # installed as the node's current state
    LATE_OLDER = "older_than_current"  # accepted; the node shows a newer report
    LATE_STALE = "stale"  # accepted; too old to be the node's current state
    DUPLICATE = "duplicate"
    SEQUENCE_AHEAD = "sequence_ahead"
    CLOCK_SKEW = "clock_skew"
    TOO_OLD = "too_old"

    @property
    def accepted(self) -> bool:
        """The relay took the report: acknowledged, and history may keep it."""
        return self in (Outcome.ACCEPTED, Outcome.LATE_OLDER, Outcome.LATE_STALE)

    @property
    def late(self) -> bool:
        return self in (Outcome.LATE_OLDER, Outcome.LATE_STALE)


LATE_OUTCOMES = tuple(o for o in Outcome if o.late)
REJECTED_OUTCOMES = tuple(o for o in Outcome if not o.accepted)


@dataclass(frozen=True)
class NodeView:
    """One node as the exposition sees it; `report` is never mutated after it is stored."""

    node: str
    agent_id: str
    report: tm.Metrics
    received_at_unix: float
    connected: bool
    # for the fleet page: since when a stream is open, and the same agent's health one
    # report earlier, to tell counters that are rising from ones that rose long ago
    connected_since_unix: float | None = None
    previous_health: tm.AgentHealth | None = None


@dataclass
class _Entry:
    agent_id: str
    report: tm.Metrics
    received_at: float
    received_at_unix: float
    previous_health: tm.AgentHealth | None = None


@dataclass
class _Agent:
    highest_sequence: int = 0
    seen: float = 0.0


@dataclass(eq=False)
class StreamClaim:
    """One open agent stream: what its hello said, and how to end it when replaced."""

    node: str
    agent_id: str
    last_sequence: int
    opened_at: float
    end: Callable[[str], None]
    reported_at: float = 0.0
    interval: float = DEFAULT_INTERVAL_SECONDS

    def sequence_ceiling(self, now: float) -> float:
        return self.last_sequence + SEQUENCE_SLACK + (now - self.opened_at) * MAX_REPORTS_PER_SECOND


class NodeConflictError(Exception):
    """A second agent for a node whose current agent took over from it and still reports."""


@dataclass(frozen=True)
class Opened:
    claim: StreamClaim
    sequence_reset: bool  # the agent came back with a lower sequence: a new epoch
    replaced: str | None  # the agent id whose stream this one ended, if any


@dataclass
class _Holder:
    claim: StreamClaim
    displaced: set[str] = field(default_factory=set)  # agent ids this holder took over from


class NodeStore:
    def __init__(
        self,
        grace_seconds: float,
        clock: Callable[[], float] = time.monotonic,
        *,
        wall_clock: Callable[[], float] = time.time,
        max_clock_skew_seconds: float = DEFAULT_MAX_CLOCK_SKEW_SECONDS,
        max_report_age_seconds: float = DEFAULT_MAX_REPORT_AGE_SECONDS,
    ) -> None:
        self.grace_seconds = grace_seconds
        self.max_clock_skew_seconds = max_clock_skew_seconds
        self.max_report_age_seconds = max_report_age_seconds
        self._clock = clock
        self._wall = wall_clock
        self._nodes: dict[str, _Entry] = {}
        self._agents: dict[str, _Agent] = {}
        self._connections: dict[str, int] = {}
        self._disconnected_at: dict[str, float] = {}
        self._holders: dict[str, _Holder] = {}
        self._connected_since: dict[str, float] = {}
        self._lock = threading.Lock()

    def highest_sequence(self, agent_id: str) -> int:
        with self._lock:
            agent = self._agents.get(agent_id)
            return agent.highest_sequence if agent is not None else 0

    # -- streams ------------------------------------------------------------------------

    def open_stream(
        self, hello: tm.Hello, end: Callable[[str], None], now: float | None = None
    ) -> Opened:
        """Register a stream after its hello; NodeConflictError when it may not hold the node.

        A newcomer for a node takes it over and the older stream is ended: that is how a
        reconnect replaces a half-open stream of the same agent, and how a DaemonSet
        rollout with maxSurge hands over (refusing the new pod would keep it unready and
        stall the rollout). The agent it replaced is then refused while the newcomer is
        connected and reporting, so two agents never take turns (each turn would reset
        the node's counters). A holder silent for three intervals can be replaced by anyone.
        """
        now = self._clock() if now is None else now
        node, agent_id = hello.node_name, hello.agent_id
        claim = StreamClaim(node, agent_id, hello.last_sequence, now, end, reported_at=now)
        replaced = None
        with self._lock:
            holder = self._holders.get(node)
            displaced: set[str] = set()
            if holder is not None and holder.claim.agent_id == agent_id:
                displaced = holder.displaced  # the same agent again: a reconnect
            elif holder is not None:
                if agent_id in holder.displaced and self._reporting(holder.claim, now):
                    raise NodeConflictError(
                        f"node {node} is held by agent {holder.claim.agent_id}, which "
                        f"replaced agent {agent_id} and is still reporting"
                    )
                displaced = {holder.claim.agent_id}
            if holder is not None:
                replaced = holder.claim.agent_id
                holder.claim.end(f"replaced by a newer stream of agent {agent_id} for node {node}")
            self._holders[node] = _Holder(claim, displaced)
            agent = self._agents.setdefault(agent_id, _Agent())
            agent.seen = now
            reset = hello.last_sequence < agent.highest_sequence
            if reset:
                agent.highest_sequence = 0  # a new epoch: the agent lost its numbering
            self._connect(node)
        return Opened(claim, reset, replaced)

    def close_stream(self, claim: StreamClaim, *, clean: bool = False) -> None:
        """The stream ended. A clean end of the stream that held the node, with no other
        stream open for it, drops the node at once: keeping its last report for a grace
        period would only make two relays serve it after the agent moved."""
        with self._lock:
            holder = self._holders.get(claim.node)
            held = holder is not None and holder.claim is claim
            if held:
                del self._holders[claim.node]
            self._disconnect(claim.node)
            if clean and held and claim.node not in self._connections:
                self._nodes.pop(claim.node, None)

    def _reporting(self, claim: StreamClaim, now: float) -> bool:
        return now - claim.reported_at <= SILENT_INTERVALS * claim.interval + self.grace_seconds

    def connected(self, node: str) -> None:
        """A stream for `node` opened (without a claim: tools and tests)."""
        with self._lock:
            self._connect(node)

    def disconnected(self, node: str) -> None:
        with self._lock:
            self._disconnect(node)

    def _connect(self, node: str) -> None:
        self._connections[node] = self._connections.get(node, 0) + 1
        self._disconnected_at.pop(node, None)
        self._connected_since.setdefault(node, self._wall())

    def _disconnect(self, node: str) -> None:
        remaining = self._connections.get(node, 0) - 1
        if remaining > 0:
            self._connections[node] = remaining
            return
        self._connections.pop(node, None)
        self._connected_since.pop(node, None)
        self._disconnected_at[node] = self._clock()

    # -- reports ------------------------------------------------------------------------

    def accept(self, report: tm.Metrics, claim: StreamClaim | None = None) -> Outcome:
        """Decide what `report` is (see the module docstring) and store it when current."""
        now, wall = self._clock(), self._wall()
        collected = report.collected_at_unix_nanos / NANOS
        if collected > wall + self.max_clock_skew_seconds:
            return Outcome.CLOCK_SKEW
        if collected < wall - self.max_report_age_seconds:
            return Outcome.TOO_OLD
        if claim is not None and report.sequence > claim.sequence_ceiling(now):
            return Outcome.SEQUENCE_AHEAD
        interval = report.health.interval_seconds or DEFAULT_INTERVAL_SECONDS
        node = report.node.name
        with self._lock:
            agent = self._agents.setdefault(report.agent_id, _Agent())
            if report.sequence <= agent.highest_sequence:
                return Outcome.DUPLICATE
            agent.highest_sequence, agent.seen = report.sequence, now
            if claim is not None:
                claim.reported_at, claim.interval = now, interval
            entry = self._nodes.get(node)
            if entry is not None and collected < entry.report.collected_at_unix_nanos / NANOS:
                return Outcome.LATE_OLDER
            window = SILENT_INTERVALS * interval + self.grace_seconds + self.max_clock_skew_seconds
            if collected < wall - window:
                return Outcome.LATE_STALE
            if entry is None or entry.agent_id != report.agent_id:
                self._nodes[node] = _Entry(report.agent_id, report, now, wall)
            else:
                entry.previous_health = tm.AgentHealth()
                entry.previous_health.CopyFrom(entry.report.health)  # not the whole report
                entry.report, entry.received_at, entry.received_at_unix = report, now, wall
            return Outcome.ACCEPTED

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
                        connected_since_unix=self._connected_since.get(node),
                        previous_health=entry.previous_health,
                    )
                )
            self._forget_old_agents(now)
        return views

    def _forget_old_agents(self, now: float) -> None:
        for node, closed_at in list(self._disconnected_at.items()):
            if node not in self._nodes and now - closed_at > self.grace_seconds:
                del self._disconnected_at[node]
        current = {entry.agent_id for entry in self._nodes.values()}
        current |= {holder.claim.agent_id for holder in self._holders.values()}
        for agent_id, agent in list(self._agents.items()):
            if agent_id not in current and now - agent.seen > AGENT_MEMORY_SECONDS:
                del self._agents[agent_id]

    def _expired(self, node: str, entry: _Entry, now: float) -> bool:
        closed_at = self._disconnected_at.get(node)
        if closed_at is not None and now - closed_at > self.grace_seconds:
            return True
        interval = entry.report.health.interval_seconds or DEFAULT_INTERVAL_SECONDS
        return now - entry.received_at > SILENT_INTERVALS * interval + self.grace_seconds

    def __len__(self) -> int:
        with self._lock:
            return len(self._nodes)
