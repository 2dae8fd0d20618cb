"""The one walk over a node's rows that every output (text, remote write) consumes."""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol

from relay.series.rows import NodeContext
from relay.series.spec import Family, Profile, Subject


class Sink(Protocol):
    """Receives a node's samples: each row's labels once, then the row's samples. A row
    no family has a value for is not passed at all."""

    def row(self, subject: Subject[Any], labels: Mapping[str, str]) -> None: ...

    def sample(
        self, family: Family[Any], name: str, labels: Mapping[str, str] | None, value: float
    ) -> None:
        """`labels` are the family's own labels beyond the row's, or None when it has none."""


# a family, its extractor, and its name when it has neither labels of its own nor a name
# taken from the data (most families: the walk's fast path)
_Step = tuple[Family[Any], Callable[[Any], float | None], str | None]


@functools.cache
def _plan(profile: Profile) -> tuple[tuple[Subject[Any], tuple[_Step, ...]], ...]:
    """The profile's families by subject, each with what the walk reads of it per row."""
    return tuple(
        (
            subject,
            tuple(
                (
                    family,
                    family.value,
                    family.name
                    if not family.labels
                    and family.dynamic_labels is None
                    and family.name_of is None
                    else None,
                )
                for family in families
            ),
        )
        for subject, families in profile.by_subject()
    )


def walk(profiles: Sequence[Profile], context: NodeContext, sink: Sink) -> None:
    add_row, add_sample = sink.row, sink.sample
    for profile in profiles:
        for subject, steps in _plan(profile):
            for row in subject.rows(context):
                row_given = False
                for family, value_of, plain_name in steps:
                    value = value_of(row)
                    if value is None:
                        continue
                    if not row_given:
                        add_row(subject, subject.label_values(row))
                        row_given = True
                    if plain_name is not None:
                        add_sample(family, plain_name, None, value)
                        continue
                    labels: dict[str, str] | None = None
                    if family.labels:
                        labels = {name: get(row) for name, get in family.labels.items()}
                    if family.dynamic_labels is not None:
                        labels = {**(labels or {}), **family.dynamic_labels(row)}
                    name = family.name if family.name_of is None else family.name_of(row)
                    add_sample(family, name, labels, value)
