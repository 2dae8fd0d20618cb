"""A set of metric families being filled for one scrape; each family has one fixed label set."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from google.protobuf.message import Message
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

NANOS = 1e9


def present(message: Message, field: str) -> float | None:
    """The field's value when the sender set it; None keeps "not reported" apart from 0."""
    return float(getattr(message, field)) if message.HasField(field) else None


def seconds(unix_nanos: int) -> float | None:
    return unix_nanos / NANOS if unix_nanos > 0 else None


Family = CounterMetricFamily | GaugeMetricFamily


class FamilySet:
    def __init__(self) -> None:
        self._families: dict[str, Family] = {}

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

    def __iter__(self) -> Iterator[Metric]:
        return iter(self._families.values())
