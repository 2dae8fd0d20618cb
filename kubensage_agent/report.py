"""One collection cycle -> one `Metrics` report: node figures first, then the runtime's view."""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass, field

from kubensage_agent.checks.scheduler import CheckScheduler
from kubensage_agent.collectors.cri import CriCollector
from kubensage_agent.collectors.errors import CollectorErrors
from kubensage_agent.collectors.node import NodeCollector
from kubensage_agent.collectors.stats_policy import StatsPolicy
from kubensage_agent.cri.client import CriClient
from kubensage_agent.cri.discovery import DiscoveryError, discover
from kubensage_agent.hostfs import HostPaths, read_small
from kubensage_agent.parsers.statm import parse_statm_resident_pages
from kubensage_api.telemetry import telemetry_pb2 as tm
from kubensage_common.version import VERSION

logger = logging.getLogger(__name__)

REDISCOVERY_SECONDS = 60.0
PAGE_BYTES = os.sysconf("SC_PAGE_SIZE")


@dataclass
class SenderHealth:
    """Figures owned by the push loop that travel in every report."""

    queue_depth: int = 0
    dropped_reports_total: int = 0
    reconnects_total: int = 0
    interval_seconds: float = 0.0
    started_at_unix_nanos: int = field(default_factory=time.time_ns)
    spool_corrupt_records_total: int = 0
    spooled_bytes: int = 0


class RuntimeLink:
    """The runtime the agent collects from; found again later when absent at start."""

    def __init__(
        self,
        paths: HostPaths,
        explicit: str | None,
        timeout: float,
        errors: CollectorErrors,
        stats: StatsPolicy | None = None,
    ) -> None:
        self.paths = paths
        self.explicit = explicit
        self.timeout = timeout
        self.errors = errors
        self.stats = stats if stats is not None else StatsPolicy()
        self.collector: CriCollector | None = None
        self.info = tm.RuntimeInfo()
        self._next_attempt = 0.0

    def current(self) -> CriCollector | None:
        if self.collector is not None or time.monotonic() < self._next_attempt:
            return self.collector
        self._next_attempt = time.monotonic() + REDISCOVERY_SECONDS
        try:
            found = discover(self.paths, self.explicit, self.timeout)
        except DiscoveryError as exc:
            self.errors.once.problem(
                "runtime:discovery",
                f"{exc}\ncollecting node metrics only; retrying every {REDISCOVERY_SECONDS:.0f}s",
            )
            return None
        self.errors.once.clear("runtime:discovery")
        version = found.version
        self.info = tm.RuntimeInfo(
            endpoint=found.endpoint,
            name=version.runtime_name,
            version=version.runtime_version,
            api_version=version.runtime_api_version,
        )
        logger.info(
            "collecting from %s %s at %s",
            version.runtime_name,
            version.runtime_version,
            found.endpoint,
        )
        self.collector = CriCollector(
            CriClient(found.endpoint, self.timeout), self.paths, self.errors, policy=self.stats
        )
        return self.collector

    def close(self) -> None:
        if self.collector is not None:
            self.collector.close()


class ReportBuilder:
    def __init__(
        self,
        *,
        agent_id: str,
        node: NodeCollector,
        runtime: RuntimeLink | None,
        errors: CollectorErrors,
        cri_timeout: float,
        sender: SenderHealth | None = None,
        checks: CheckScheduler | None = None,
    ) -> None:
        self.agent_id = agent_id
        self.node = node
        self.runtime = runtime
        self.errors = errors
        self.cri_timeout = cri_timeout
        self.sender = sender or SenderHealth()
        self.checks = checks
        self._last_collected_at = 0

    def _collection_time(self) -> int:
        """Wall-clock time of this cycle, never earlier than the previous one.

        A clock stepped backwards (NTP correction, VM resume) must not make a newer
        report look older than the one the relay already holds.
        """
        self._last_collected_at = max(time.time_ns(), self._last_collected_at + 1)
        return self._last_collected_at

    def build(self, sequence: int) -> tm.Metrics:
        """One report, built in place: every collector adds to the message it goes out in."""
        started = time.monotonic()
        report = tm.Metrics(
            agent_id=self.agent_id,
            sequence=sequence,
            collected_at_unix_nanos=self._collection_time(),
            agent_version=VERSION,
        )
        self.node.collect(into=report.node)
        cri = self.runtime.current() if self.runtime is not None else None
        if cri is not None and self.runtime is not None:
            cri.collect(deadline=time.monotonic() + self.cri_timeout, into=report)
            report.runtime.CopyFrom(self.runtime.info)
        health = report.health
        health.cycle_duration_seconds = time.monotonic() - started
        health.queue_depth = self.sender.queue_depth
        health.dropped_reports_total = self.sender.dropped_reports_total
        health.reconnects_total = self.sender.reconnects_total
        health.interval_seconds = self.sender.interval_seconds
        health.started_at_unix_nanos = self.sender.started_at_unix_nanos
        health.spool_corrupt_records_total = self.sender.spool_corrupt_records_total
        health.spooled_bytes = self.sender.spooled_bytes
        health.cri_errors_total = cri.cri_errors_total if cri is not None else 0
        health.collector_errors_total.update(self.errors.totals)
        if self.checks is not None:  # the newest results only: a check never delays a cycle
            report.checks.extend(self.checks.results())
            health.check_errors_total = self.checks.errors_total
        _own_cost(health)
        return report


def _own_cost(health: tm.AgentHealth) -> None:
    """The agent's own CPU so far (every thread) and resident memory now: two cheap
    reads, so an operator sees what the agent costs next to what it reports."""
    times = os.times()
    health.process_cpu_seconds_total = times.user + times.system
    try:
        pages = parse_statm_resident_pages(read_small("/proc/self/statm"))
    except (OSError, ValueError):
        return  # not reported this cycle rather than a fake zero
    health.process_resident_memory_bytes = pages * PAGE_BYTES
