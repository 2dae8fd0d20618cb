"""Extractor helpers shared by the declaration tables."""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal, Protocol

from google.protobuf.message import Message

from kubensage_api.telemetry import telemetry_pb2 as tm

NANOS = 1e9
PsiKind = Literal["some", "full"]
# PSI "some" is exposed as *_waiting_*, "full" as *_stalled_*, as node_exporter names them.
PSI_MEANINGS: tuple[tuple[PsiKind, str], ...] = (("some", "waiting"), ("full", "stalled"))


def present(message: Message, field: str) -> float | None:
    """The field's value when the sender set it; None keeps "not reported" apart from 0."""
    return float(getattr(message, field)) if message.HasField(field) else None


class HasItem(Protocol):
    @property
    def item(self) -> Message: ...


def item_field(field: str) -> Callable[[HasItem], float | None]:
    """The extractor of one field of a row's part (an interface, a device...)."""
    return lambda row: present(row.item, field)


def seconds(unix_nanos: int) -> float | None:
    return unix_nanos / NANOS if unix_nanos > 0 else None


def nonzero(value: float) -> float | None:
    """For proto3 scalars without presence where 0 means "not set"."""
    return value if value else None


class HasPressure(Protocol):
    def pressure(self, resource: str) -> tm.Pressure | None: ...


def psi_total(resource: str, kind: PsiKind) -> Callable[[HasPressure], float | None]:
    def total(row: HasPressure) -> float | None:
        entry = row.pressure(resource)
        if entry is None or not entry.HasField(kind):
            return None
        line: tm.PressureLine = getattr(entry, kind)
        return line.total_seconds

    return total
