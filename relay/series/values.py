"""Extractor helpers shared by the declaration tables."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Literal, Protocol

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


# node_os_info's labels as node_exporter declares them, each holding the os-release key of
# its name in upper case
OS_INFO_LABELS = (
    "build_id",
    "id",
    "id_like",
    "image_id",
    "image_version",
    "name",
    "pretty_name",
    "variant",
    "variant_id",
    "version",
    "version_codename",
    "version_id",
)


def os_release(node: tm.Node) -> Mapping[str, str]:
    """The node's os-release keys; from the older summary fields when the agent sends
    no map, so the identity survives an agent that predates it."""
    if node.os_release:
        return node.os_release
    older = {
        "NAME": node.os_name,
        "ID": node.os_id,
        "PRETTY_NAME": node.os_image,
        "VERSION_ID": node.os_version,
        "VERSION_CODENAME": node.os_version_codename,
    }
    return {key: value for key, value in older.items() if value}


def os_release_key(key: str) -> Callable[[Any], str]:
    """One os-release key of a node row, empty when the file lacks it."""
    return lambda c: os_release(c.node).get(key, "")


def os_release_labels() -> dict[str, Callable[[Any], str]]:
    """node_os_info's labels on a node row, empty for keys the file lacks."""
    return {label: os_release_key(label.upper()) for label in OS_INFO_LABELS}


def uname_labels() -> dict[str, Callable[[Any], str]]:
    """uname(2)'s fields on a node row, under node_exporter's node_uname_info labels."""
    return {
        "sysname": lambda c: c.node.uname_sysname,
        "release": lambda c: c.node.kernel_release,
        "version": lambda c: c.node.kernel_version,
        "machine": lambda c: c.node.architecture,
        "nodename": lambda c: c.node.hostname,
        "domainname": lambda c: c.node.uname_domainname,
    }


def info_when(known: Callable[[tm.Node], object]) -> Callable[[Any], float | None]:
    """An info family's value on a node row: 1 when the node reported the facts, else none."""
    return lambda c: 1.0 if known(c.node) else None
