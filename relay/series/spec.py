"""The declaration types: subjects (rows with labels) and families measured on them."""

from __future__ import annotations

import enum
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from relay.series.rows import NodeContext

R = TypeVar("R")
Getter = Callable[[R], str]


class Kind(enum.StrEnum):
    COUNTER = "counter"
    GAUGE = "gauge"
    # only where another exporter's exact TYPE line is the contract (node_exporter's vmstat)
    UNTYPED = "untyped"


@dataclass(frozen=True, slots=True, eq=False)
class Subject(Generic[R]):
    """What a family is measured on: the rows one node yields and each row's labels.

    `labels` maps every label name to its getter; every family on the subject
    carries them all, so a label can never drop out of a series by position.
    """

    name: str
    help: str
    rows: Callable[[NodeContext], Iterable[R]]
    labels: Mapping[str, Getter[R]]

    def label_values(self, row: R) -> dict[str, str]:
        return {name: get(row) for name, get in self.labels.items()}

    def part(
        self,
        name: str,
        help: str,
        rows: Callable[[NodeContext], Iterable[Any]],
        labels: Mapping[str, Getter[Any]],
    ) -> Subject[Any]:
        """A subject whose rows are parts of this one's (`.parent`), with its labels and more."""
        inherited = {key: _of_parent(get) for key, get in self.labels.items()}
        return Subject(name, help, rows, {**inherited, **labels})


def _of_parent(get: Getter[Any]) -> Getter[Any]:
    return lambda row: get(row.parent)


@dataclass(frozen=True, slots=True, eq=False)
class Family(Generic[R]):
    """One exposed family: one name, one type, one label set, one extractor.

    `value` returns None when the node did not report the figure: no sample is
    written then, never a zero. `labels` are the family's own labels beyond its
    subject's. Two rarely needed escapes, both shown as such in the docs:
    `dynamic_labels` for label names that come from the data (pod labels) and
    `name_of` for family names that do (one family per /proc/meminfo field).
    """

    name: str
    kind: Kind
    unit: str
    help: str
    subject: Subject[Any]
    value: Callable[[Any], float | None]
    labels: Mapping[str, Getter[Any]] = field(default_factory=dict)
    dynamic_labels: Callable[[Any], Mapping[str, str]] | None = None
    dynamic_labels_doc: str = ""
    name_of: Callable[[Any], str] | None = None

    @property
    def label_names(self) -> tuple[str, ...]:
        return (*self.subject.labels, *self.labels)


@dataclass(frozen=True, slots=True)
class Profile:
    """A named table of families, e.g. native kubensage_* names or cAdvisor's."""

    name: str
    help: str
    families: tuple[Family[Any], ...]

    def by_subject(self) -> list[tuple[Subject[Any], tuple[Family[Any], ...]]]:
        """Families grouped by subject in declaration order, so each row is visited once."""
        groups: dict[int, tuple[Subject[Any], list[Family[Any]]]] = {}
        for family in self.families:
            groups.setdefault(id(family.subject), (family.subject, []))[1].append(family)
        return [(subject, tuple(families)) for subject, families in groups.values()]
