"""The recommendations and the advisor's own health as Prometheus metrics.

Only the leader exports `kubensage_recommendation_*`: every replica scraped by the same
ServiceMonitor would otherwise publish the same values, and a sum over replicas would
count them twice. Followers export only their own health, with
`kubensage_advisor_leader 0`. Values are in base units: cores for resource="cpu",
bytes for resource="memory".
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Protocol

from prometheus_client import CollectorRegistry, Counter, Gauge
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from advisor.prometheus import REASONS
from advisor.report import Report, Row
from advisor.strategy import OK


class Elector(Protocol):
    @property
    def is_leader(self) -> bool: ...

    @property
    def transitions(self) -> int: ...

    @property
    def errors(self) -> int: ...


LABELS = ["namespace", "workload", "workload_kind", "container", "resource"]
RESOURCES = ("cpu", "memory")


@dataclass(frozen=True)
class _Family:
    suffix: str
    help: str
    value: Callable[[Row, str], float | None]


def _advice_value(which: str) -> Callable[[Row, str], float | None]:
    def value(row: Row, resource: str) -> float | None:
        advice = row.cpu if resource == "cpu" else row.memory
        return getattr(advice, which) if advice.status == OK else None

    return value


def _current(which: str) -> Callable[[Row, str], float | None]:
    def value(row: Row, resource: str) -> float | None:
        values: dict[str, float] = getattr(row.evidence, which)
        return values.get(resource)

    return value


def _usage(cpu: str, memory: str) -> Callable[[Row, str], float | None]:
    def value(row: Row, resource: str) -> float | None:
        field = cpu if resource == "cpu" else memory
        return getattr(row.evidence, field) if field else None

    return value


FAMILIES = (
    _Family("request", "Recommended request (cores or bytes).", _advice_value("request")),
    _Family(
        "limit", "Recommended limit; absent when no limit is recommended.", _advice_value("limit")
    ),
    _Family("current_request", "Request in force when computed.", _current("requests")),
    _Family("current_limit", "Limit in force when computed.", _current("limits")),
    _Family(
        "usage_percentile",
        "CPU: the strategy's percentile of 5-minute rates.",
        _usage("cpu_percentile", ""),
    ),
    _Family(
        "usage_peak",
        "Highest 5-minute CPU rate / working set in the window.",
        _usage("cpu_peak", "memory_peak"),
    ),
    _Family(
        "history_days",
        "Days of 5-minute usage steps behind it.",
        lambda r, _: r.evidence.history_days,
    ),
    _Family("oom_kills", "OOM kills in the window (memory).", _usage("", "oom_kills")),
    _Family(
        "throttled_ratio",
        "Share of CFS periods throttled in the window (cpu).",
        lambda r, res: r.evidence.throttled_ratio if res == "cpu" else None,
    ),
)


class RecommendationCollector(Collector):
    def __init__(self, latest: Callable[[], Report | None], is_leader: Callable[[], bool]) -> None:
        self.latest = latest
        self.is_leader = is_leader

    def collect(self) -> Iterator[Metric]:
        report = self.latest()
        if report is None or not self.is_leader():
            return
        for family in FAMILIES:
            metric = GaugeMetricFamily(
                f"kubensage_recommendation_{family.suffix}", family.help, labels=LABELS
            )
            for row in report.rows:
                key = row.evidence.key
                for resource in RESOURCES:
                    value = family.value(row, resource)
                    if value is not None:
                        metric.add_metric(
                            [
                                key.namespace,
                                key.workload,
                                key.workload_kind,
                                key.container,
                                resource,
                            ],
                            value,
                        )
            yield metric
        if report.prices.any:
            cost = GaugeMetricFamily(
                "kubensage_recommendation_monthly_cost_difference",
                "Monthly cost change of following the recommendation (price units).",
                labels=LABELS[:4],
            )
            for row in report.rows:
                if row.monthly_cost_difference is not None:
                    key = row.evidence.key
                    cost.add_metric(
                        [key.namespace, key.workload, key.workload_kind, key.container],
                        row.monthly_cost_difference,
                    )
            yield cost


class AdvisorMetrics:
    """The advisor's own health, the same on every replica."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.last_success = Gauge(
            "kubensage_advisor_last_success_timestamp_seconds",
            "When the recommendations served were computed.",
            registry=registry,
        )
        self.stale = Gauge(
            "kubensage_advisor_recommendations_stale",
            "1 while the latest run failed and older recommendations are served.",
            registry=registry,
        )
        self.containers = Gauge(
            "kubensage_advisor_containers",
            "Workload containers in the latest recommendations.",
            registry=registry,
        )
        self.run_seconds = Gauge(
            "kubensage_advisor_run_duration_seconds",
            "Duration of the latest run (all queries).",
            registry=registry,
        )
        self.runs = Counter(
            "kubensage_advisor_runs_total",
            "Recommendation runs, by result.",
            ["result"],
            registry=registry,
        )
        for result in ("success", "failure"):
            self.runs.labels(result)
        self.query_errors = Counter(
            "kubensage_advisor_query_errors_total",
            "Failed Prometheus queries, by reason.",
            ["reason"],
            registry=registry,
        )
        for reason in REASONS:
            self.query_errors.labels(reason)


class LeadershipHealth(Collector):
    """Leadership as the elector sees it: held or not, changes, failed lease calls."""

    def __init__(self, elector: Elector) -> None:
        self.elector = elector

    def collect(self) -> Iterator[Metric]:
        yield GaugeMetricFamily(
            "kubensage_advisor_leader",
            "1 on the replica holding the lease (and computing).",
            value=1 if self.elector.is_leader else 0,
        )
        yield CounterMetricFamily(
            "kubensage_advisor_leader_changes",
            "Times this replica gained or lost leadership.",
            value=self.elector.transitions,
        )
        yield CounterMetricFamily(
            "kubensage_advisor_lease_errors",
            "Lease API calls that failed or missed their deadline.",
            value=self.elector.errors,
        )
