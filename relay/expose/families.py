"""A set of metric families being filled for one scrape; each family has one fixed label set."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Iterator, Sequence

from google.protobuf.message import Message
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

NANOS = 1e9


def present(message: Message, field: str) -> float | None:
    """The field's value when the sender set it; None keeps "not reported" apart from 0."""
    return float(getattr(message, field)) if message.HasField(field) else None


def seconds(unix_nanos: int) -> float | None:
    return unix_nanos / NANOS if unix_nanos > 0 else None


Family = CounterMetricFamily | GaugeMetricFamily
INVALID_LABEL_CHARS = re.compile(r"[^a-zA-Z0-9_]")


def prometheus_label_names(keys: Iterable[str], prefix: str = "label_") -> dict[str, str]:
    """Map Kubernetes label keys to valid, distinct Prometheus label names.

    `app.kubernetes.io/name` becomes `label_app_kubernetes_io_name`; when two keys
    sanitize to the same name, the later one (in sorted order) gets a short hash of
    its original key appended, so neither is lost and the mapping is stable.
    """
    names: dict[str, str] = {}
    used: set[str] = set()
    for key in sorted(set(keys)):
        name = prefix + INVALID_LABEL_CHARS.sub("_", key)
        if name in used:
            name = f"{name}_{hashlib.sha256(key.encode()).hexdigest()[:8]}"
        used.add(name)
        names[key] = name
    return names


class FamilySet:
    def __init__(self) -> None:
        self._families: dict[str, Family] = {}
        self._varying: dict[str, Metric] = {}

    def _family(self, cls: type[Family], name: str, doc: str, labels: Sequence[str]) -> Family:
        family = self._families.get(name)
        if family is None:
            family = cls(name, doc, labels=list(labels))
            self._families[name] = family
        return family

    def gauge(
        self, name: str, doc: str, labels: Sequence[str], values: Sequence[str], value: float | None
    ) -> None:
        """Add one sample; a None value registers the family (HELP/TYPE) but no sample."""
        family = self._family(GaugeMetricFamily, name, doc, labels)
        if value is not None:
            family.add_metric(list(values), value)

    def counter(
        self, name: str, doc: str, labels: Sequence[str], values: Sequence[str], value: float | None
    ) -> None:
        family = self._family(CounterMetricFamily, name, doc, labels)
        if value is not None:
            family.add_metric(list(values), value)

    def varying(self, name: str, doc: str, labels: dict[str, str], value: float) -> None:
        """A sample whose label names differ from sample to sample (kube-state-metrics'
        *_labels style), which the fixed-label family classes cannot hold."""
        family = self._varying.get(name)
        if family is None:
            family = self._varying[name] = Metric(name, doc, "gauge")
        family.add_sample(name, labels, value)

    def __iter__(self) -> Iterator[Metric]:
        yield from self._families.values()
        yield from self._varying.values()
