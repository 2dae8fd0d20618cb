"""The one walk over a node's rows that every output (text, remote write) consumes."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from relay.series.rows import NodeContext
from relay.series.spec import Family, Profile, Subject


class Sink(Protocol):
    """Receives a node's samples: each row's labels once, then the row's samples."""

    def row(self, subject: Subject[Any], labels: Mapping[str, str]) -> None: ...

    def sample(
        self, family: Family[Any], name: str, labels: Mapping[str, str] | None, value: float
    ) -> None:
        """`labels` are the family's own labels beyond the row's, or None when it has none."""


def walk(profiles: Sequence[Profile], context: NodeContext, sink: Sink) -> None:
    for profile in profiles:
        for subject, families in profile.by_subject():
            for row in subject.rows(context):
                sink.row(subject, subject.label_values(row))
                for family in families:
                    value = family.value(row)
                    if value is None:
                        continue
                    labels: dict[str, str] | None = None
                    if family.labels:
                        labels = {name: get(row) for name, get in family.labels.items()}
                    if family.dynamic_labels is not None:
                        labels = {**(labels or {}), **family.dynamic_labels(row)}
                    name = family.name if family.name_of is None else family.name_of(row)
                    sink.sample(family, name, labels, value)
