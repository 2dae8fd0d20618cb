"""Which metric names and label names a PromQL expression uses, checked against what
kubensage declares it emits.

Expressions are parsed by promql-parser (the Rust PromQL parser of GreptimeDB, built on
Prometheus 2.45's grammar, with Python bindings): a real parse tree gives every selector,
matcher, grouping and join label without a hand-written partial parser, and promtool can
check an expression's syntax but cannot list what it selects.

The declarations are the relay's own: every metric profile (relay.series.profiles), the
relay's registry (relay.selfmetrics, relay.export.metrics with one receiver, the
enrichment health), plus the labels a Prometheus scrape adds (TARGET_LABELS) and `up`.
Recorded series get the labels their expression can carry. Label sets are tracked as an
over-approximation (a binary operation carries either side's labels), so a grouping or
matcher on a label no operand has is an error, an uncommon but legal combination is not.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

import promql_parser as pp
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from relay.enrich.health import EnrichmentHealth
from relay.export.metrics import EXAMPLE_URL, RemoteWriteMetrics
from relay.selfmetrics import RelayMetrics
from relay.series.profiles import PROFILES

# labels a scrape adds (job, instance) and the one a multi-cluster Prometheus adds as a
# target or external label (kubensage_mixin.config.Config.cluster_label)
TARGET_LABELS = frozenset({"job", "instance", "cluster"})
SYNTHETIC = {"up": frozenset()}
# what Grafana puts in a query before sending it
GRAFANA_MACROS = {"$__rate_interval": "5m", "$__interval": "1m", "$__range": "1h"}
LABEL_VALUES = re.compile(r"^label_values\((?P<expr>.+),\s*(?P<label>[A-Za-z_][A-Za-z0-9_]*)\)$")


def _wrapper_series(metric: Counter | Gauge | Histogram) -> dict[str, frozenset[str]]:
    name, labels = metric._name, frozenset(metric._labelnames)
    kind = metric._type
    if kind == "counter":
        return {f"{name}_total": labels}
    if kind == "histogram":
        return {
            f"{name}_bucket": labels | {"le"},
            f"{name}_sum": labels,
            f"{name}_count": labels,
        }
    return {name: labels}


def _relay_health() -> dict[str, frozenset[str]]:
    registry = CollectorRegistry()
    series: dict[str, frozenset[str]] = {}
    remote_write = RemoteWriteMetrics(registry)
    remote_write.receiver(EXAMPLE_URL, lambda: 0.0, lambda: 0.0, 0)
    for holder in (RelayMetrics(registry), remote_write):
        for value in vars(holder).values():
            if isinstance(value, Counter | Gauge | Histogram):
                series.update(_wrapper_series(value))
    informer = SimpleNamespace(
        resource="nodes",
        items={},
        synced=threading.Event(),
        stats=SimpleNamespace(lists=0, gone=0, errors=0),
    )
    health = EnrichmentHealth(SimpleNamespace(informers=[informer]))  # type: ignore[arg-type]
    for metric in health.collect():
        for sample in metric.samples:
            series[sample.name] = frozenset(sample.labels)
    return series


def declared_series() -> dict[str, frozenset[str]]:
    """Metric name to label names, for everything a relay can serve."""
    series = _relay_health()
    for profile in PROFILES.values():
        for family in profile.families:
            if family.name_of is None:
                series[family.name] = frozenset(family.label_names)
    series.update(SYNTHETIC)
    return series


@dataclass
class Checker:
    series: dict[str, frozenset[str]] = field(default_factory=declared_series)

    def record(self, name: str, expr: str) -> list[str]:
        """Check a recording rule's expression and learn the series it records."""
        problems: list[str] = []
        labels = self._labels(pp.parse(expr), problems)
        self.series[name] = frozenset(labels - TARGET_LABELS - {"__name__"})
        return problems

    def check(self, expr: str) -> list[str]:
        """Problems of one expression (Grafana macros replaced); empty when it is clean."""
        for macro, value in GRAFANA_MACROS.items():
            expr = expr.replace(macro, value)
        problems: list[str] = []
        self._labels(pp.parse(expr), problems)
        return problems

    def check_label_values(self, query: str) -> list[str]:
        """A Grafana `label_values(expr, label)` variable query."""
        match = LABEL_VALUES.match(query)
        if match is None:
            return [f"not a label_values(expr, label) query: {query}"]
        problems: list[str] = []
        labels = self._labels(pp.parse(match["expr"]), problems)
        if match["label"] not in labels:
            problems.append(f"label {match['label']!r} is on none of {match['expr']}")
        return problems

    def _selector(self, selector: pp.VectorSelector, problems: list[str]) -> set[str]:
        name = selector.name
        if name is None:
            return set()
        if name not in self.series:
            problems.append(f"unknown metric {name}")
            return set(TARGET_LABELS)
        labels = set(self.series[name] | TARGET_LABELS)
        for matcher in selector.matchers.matchers:
            if matcher.name != "__name__" and matcher.name not in labels:
                problems.append(f"{name} has no label {matcher.name!r}")
        return labels

    def _require(
        self, wanted: Iterable[str], have: set[str], where: str, problems: list[str]
    ) -> None:
        for label in wanted:
            if label not in have:
                problems.append(f"{where}: label {label!r} is on no operand")

    def _labels(self, expr: Any, problems: list[str]) -> set[str]:
        """The labels `expr`'s result can carry; problems found on the way are appended."""
        if isinstance(expr, pp.VectorSelector):
            return self._selector(expr, problems)
        if isinstance(expr, pp.MatrixSelector):
            return self._selector(expr.vector_selector, problems)
        if isinstance(expr, pp.ParenExpr | pp.UnaryExpr | pp.SubqueryExpr):
            return self._labels(expr.expr, problems)
        if isinstance(expr, pp.NumberLiteral | pp.StringLiteral):
            return set()
        if isinstance(expr, pp.Call):
            return self._call(expr, problems)
        if isinstance(expr, pp.AggregateExpr):
            inner = self._labels(expr.expr, problems)
            if expr.param is not None:
                self._labels(expr.param, problems)
            modifier = expr.modifier
            if modifier is None:
                return set()
            self._require(modifier.labels, inner, "grouping", problems)
            if modifier.type == pp.AggModifierType.By:
                return set(modifier.labels)
            return inner - set(modifier.labels)
        if isinstance(expr, pp.BinaryExpr):
            both = self._labels(expr.lhs, problems) | self._labels(expr.rhs, problems)
            modifier = expr.modifier
            if modifier is not None:
                if modifier.matching is not None:
                    self._require(modifier.matching.labels, both, "vector matching", problems)
                self._require(modifier.group_labels or (), both, "group_left/right", problems)
            return both
        raise TypeError(f"unexpected PromQL node {type(expr).__name__}")

    def _call(self, call: pp.Call, problems: list[str]) -> set[str]:
        args = call.args
        labels: set[str] = set()
        for arg in args:
            labels |= self._labels(arg, problems)
        name = call.func.name
        if name == "label_replace":
            self._require([args[3].val], labels | {""}, "label_replace source", problems)
            return labels | {args[1].val}
        if name == "label_join":
            self._require([a.val for a in args[3:]], labels, "label_join source", problems)
            return labels | {args[1].val}
        if name == "histogram_quantile":
            self._require(["le"], labels, "histogram_quantile", problems)
            return labels - {"le"}
        return labels
