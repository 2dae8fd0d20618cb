"""Caps on what one report may hold, so a buggy or hostile agent cannot grow the relay.

Every repeated field and map of the protocol has a cap (named ones below, any other
field `max_other_entries`), and every string field, repeated string and map key or
value has a byte bound: `max_label_value_bytes`, unless listed in `OWN_BOUNDS`. Both
are found from the message descriptors, so a field added to the protocol later is
covered without a change here. Over-cap content is cut, not refused (the rest of the
report is still good data), and every cut is counted by the field it was made in.

Whether a report needs cutting at all is known from the wire scan (relay.ingest.wirescan)
before it is parsed; the descriptor walk here runs only for reports that do.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any

from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import Message

from kubensage_api.telemetry import telemetry_pb2 as tm

PACKAGE = tm.DESCRIPTOR.package + "."
# Strings that never become a label and carry their own bound.
OWN_BOUNDS = {"CheckResult.output": 4096}
UTF8_MAX_BYTES_PER_CHAR = 4


@dataclass(frozen=True)
class ReportLimits:
    max_pods: int = 110  # the kubelet's default --max-pods
    max_containers_per_pod: int = 32
    max_containers: int = 512  # across all pods of one report
    max_labels: int = 64  # per pod and per container label map
    max_interfaces: int = 256  # node interfaces, and per pod
    max_filesystems: int = 128
    max_disks: int = 128
    max_cpus: int = 1024
    max_other_entries: int = 256  # any other repeated field or map
    max_label_value_bytes: int = 1024
    # All repeated entries of one message together, checked on the wire before parsing:
    # each costs up to ~200 bytes once parsed, so this bounds a message's memory.
    max_entries: int = 32768

    def __post_init__(self) -> None:
        for name, value in vars(self).items():
            if value < 1:
                raise ValueError(f"{name} must be at least 1, not {value}")

    def cap(self, field: FieldDescriptor) -> int:
        """Most entries `field` may hold in one message (or one report, see PER_REPORT)."""
        attribute = NAMED_CAPS.get(short_name(field))
        return int(getattr(self, attribute)) if attribute else self.max_other_entries

    def string_bound(self, field: FieldDescriptor) -> int:
        return OWN_BOUNDS.get(short_name(field), self.max_label_value_bytes)


NAMED_CAPS = {
    "Metrics.pods": "max_pods",
    "Pod.containers": "max_containers_per_pod",
    "Pod.labels": "max_labels",
    "Container.labels": "max_labels",
    "Node.interfaces": "max_interfaces",
    "Pod.network": "max_interfaces",
    "Node.filesystems": "max_filesystems",
    "Node.disks": "max_disks",
    "Node.cpus": "max_cpus",
}
# Caps that hold for the report as a whole rather than for each message holding the field.
PER_REPORT = {"Pod.containers": "max_containers"}


def short_name(field: FieldDescriptor) -> str:
    """`Message.field` without the package: the name caps and cut counters use."""
    return field.full_name.removeprefix(PACKAGE)


def is_map(field: FieldDescriptor) -> bool:
    return field.message_type is not None and field.message_type.GetOptions().map_entry


def cut_text(text: str, max_bytes: int) -> str | None:
    """`text` cut to `max_bytes` of UTF-8 on a character boundary, or None when it fits."""
    # most values are provably short without encoding them
    if len(text) * UTF8_MAX_BYTES_PER_CHAR <= max_bytes:
        return None
    raw = text.encode()
    if len(raw) <= max_bytes:
        return None
    return raw[:max_bytes].decode(errors="ignore")


class _Cutter:
    """The descriptor walk: the one place where strings and repeated fields are cut."""

    def __init__(self, limits: ReportLimits) -> None:
        self.limits = limits
        self.cuts: Counter[str] = Counter()
        self.report_totals: Counter[str] = Counter()

    def message(self, message: Message) -> None:
        for field, value in message.ListFields():
            name = short_name(field)
            if is_map(field):
                self._map(field, name, value)
            elif field.type == FieldDescriptor.TYPE_STRING:
                if field.is_repeated:
                    self._cap(field, name, value)
                    self._strings(field, name, value)
                else:
                    short = cut_text(value, self.limits.string_bound(field))
                    if short is not None:
                        setattr(message, field.name, short)
                        self.cuts[name] += 1
            elif field.message_type is not None:
                if field.is_repeated:
                    self._cap(field, name, value)
                    for item in value:
                        self.message(item)
                else:
                    self.message(value)

    def _cap(self, field: FieldDescriptor, name: str, values: Any) -> None:
        keep = self.limits.cap(field)
        per_report = PER_REPORT.get(name)
        if per_report is not None:
            room = int(getattr(self.limits, per_report)) - self.report_totals[name]
            keep = max(0, min(keep, room))
        if len(values) > keep:
            self.cuts[name] += len(values) - keep
            del values[keep:]
        self.report_totals[name] += len(values)

    def _strings(self, field: FieldDescriptor, name: str, values: Any) -> None:
        bound = self.limits.string_bound(field)
        for index, item in enumerate(values):
            short = cut_text(item, bound)
            if short is not None:
                values[index] = short
                self.cuts[name] += 1

    def _map(self, field: FieldDescriptor, name: str, mapping: Any) -> None:
        entry = field.message_type
        assert entry is not None  # a map field is a repeated entry message
        key_field, value_field = entry.fields
        keys = sorted(mapping)
        cap = self.limits.cap(field)
        if len(keys) > cap:
            for key in keys[cap:]:
                del mapping[key]
            self.cuts[name] += len(keys) - cap
            keys = keys[:cap]
        if value_field.message_type is not None:
            for key in keys:
                self.message(mapping[key])
        string_key = key_field.type == FieldDescriptor.TYPE_STRING
        string_value = value_field.type == FieldDescriptor.TYPE_STRING
        if not (string_key or string_value):
            return
        key_bound = self.limits.string_bound(key_field)
        value_bound = self.limits.string_bound(value_field)
        for key in keys:
            value = mapping[key]
            short_key = cut_text(key, key_bound) if string_key else None
            short_value = cut_text(value, value_bound) if string_value else None
            if short_key is None and short_value is None:
                continue
            self.cuts[name] += 1
            del mapping[key]
            mapping[key if short_key is None else short_key] = (
                value if short_value is None else short_value
            )


def drop_unused(report: tm.Metrics) -> None:
    """Clear what the relay never exposes, before the report is kept."""
    for pod in report.pods:
        if pod.annotations:
            pod.ClearField("annotations")


def enforce_limits(message: Message, limits: ReportLimits) -> Counter[str]:
    """Cut `message` in place to `limits`; return how many entries or values of each field
    were cut (keys are `Message.field`)."""
    cutter = _Cutter(limits)
    cutter.message(message)
    return cutter.cuts
