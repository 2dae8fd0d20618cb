"""A pass over a message's protobuf wire format before it is parsed.

Parsing allocates for every entry of a repeated field: two bytes on the wire (an empty
entry) become ~200 bytes of parsed message, so a megabyte of repeated empties costs a
hundred. This pass walks the serialized bytes without allocating per entry: it counts
the entries of every repeated field and map against the caps, measures every string,
and skips whatever cannot matter by its length prefix. It refuses a message whose
entries exceed the memory budget or that is not well-formed, and tells whether the
parsed message will need cutting, so a report within every limit is never walked again.

The plan of what to look at comes from the message descriptors: a field added to the
protocol later is covered without a change here.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import NamedTuple

from google.protobuf.descriptor import Descriptor, FieldDescriptor

from relay.ingest.limits import PER_REPORT, ReportLimits, short_name

WIRE_VARINT, WIRE_FIXED64, WIRE_LENGTH, WIRE_FIXED32 = 0, 1, 2, 5
# Fields of a message the relay does not know (a newer agent's): a few are forward
# compatibility, thousands are an attempt to make this pass slow.
MAX_UNKNOWN_FIELDS = 64
NEVER = 1 << 62  # a length no message reaches: "do not descend"


class WireError(ValueError):
    """A message refused before parsing; `reason` is a stable counter label."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason


class _Descend(NamedTuple):
    """A singular message field: walk into it when its payload is longer than `over`."""

    over: int
    plan: Plan


class _Count(NamedTuple):
    """A repeated field or map: count its entries, measure each, maybe walk into each."""

    key: str  # Message.field, for caps and counters
    cap: int
    report_cap: int  # > 0 when the cap holds across the whole report
    string_bound: int  # an entry longer than this may hold a string that needs a cut
    descend_over: int  # walk into an entry longer than this
    plan: Plan | None


# A rule is one of those, or an int: the byte bound of a plain string field (NEVER for a
# known field with nothing to check). Three kinds, so the hot loop dispatches on a class.
Rule = _Descend | _Count | int


@dataclass
class Plan:
    """Tag -> rule for every field of one message type."""

    rules: dict[int, Rule] = field(default_factory=dict)
    short_tags: list[Rule | None] = field(default_factory=lambda: [None] * 0x80)  # 1-byte tags
    has_repeated: bool = False  # anywhere below: entries must be counted
    min_string_bound: int = NEVER  # the smallest string bound anywhere below


def _wire_type(field: FieldDescriptor) -> int:
    if field.type in (
        FieldDescriptor.TYPE_STRING,
        FieldDescriptor.TYPE_BYTES,
        FieldDescriptor.TYPE_MESSAGE,
    ):
        return WIRE_LENGTH
    if field.type in (
        FieldDescriptor.TYPE_DOUBLE,
        FieldDescriptor.TYPE_FIXED64,
        FieldDescriptor.TYPE_SFIXED64,
    ):
        return WIRE_FIXED64
    if field.type in (
        FieldDescriptor.TYPE_FLOAT,
        FieldDescriptor.TYPE_FIXED32,
        FieldDescriptor.TYPE_SFIXED32,
    ):
        return WIRE_FIXED32
    return WIRE_VARINT


def build_plan(descriptor: Descriptor, limits: ReportLimits) -> Plan:
    """The scan plan for `descriptor` under `limits` (the protocol has no recursive types)."""
    plan = Plan()
    for item in descriptor.fields:
        wire = _wire_type(item)
        plan.rules[item.number << 3 | wire] = NEVER
        if item.is_repeated and wire != WIRE_LENGTH:
            plan.rules[item.number << 3 | WIRE_LENGTH] = NEVER  # a packed repeated scalar
        string_bound = descend_over = NEVER
        child = None
        if item.type == FieldDescriptor.TYPE_STRING:
            string_bound = limits.string_bound(item)
            plan.min_string_bound = min(plan.min_string_bound, string_bound)
        elif item.message_type is not None:
            child = build_plan(item.message_type, limits)
            plan.has_repeated |= child.has_repeated
            plan.min_string_bound = min(plan.min_string_bound, child.min_string_bound)
            if child.has_repeated:
                descend_over = -1
            elif child.min_string_bound < NEVER:
                # no entries to count inside: only a payload longer than its shortest
                # string bound can hold a string that needs a cut
                descend_over = child.min_string_bound
            else:
                child = None
        rule: Rule
        if item.is_repeated:
            key = short_name(item)
            per_report = PER_REPORT.get(key)
            report_cap = int(getattr(limits, per_report)) if per_report else 0
            rule = _Count(key, limits.cap(item), report_cap, string_bound, descend_over, child)
            plan.has_repeated = True
        elif child is not None:
            rule = _Descend(descend_over, child)
        else:
            rule = string_bound
        plan.rules[item.number << 3 | WIRE_LENGTH] = rule
    for tag, rule in plan.rules.items():
        if tag < 0x80:
            plan.short_tags[tag] = rule
    return plan


@dataclass
class ScanResult:
    entries: int = 0
    needs_cut: bool = False
    report_counts: Counter[str] = field(default_factory=Counter)


class _Scanner:
    def __init__(self, data: bytes, max_entries: int) -> None:
        self.data = data
        self.max_entries = max_entries
        self.result = ScanResult()

    def varint(self, pos: int, end: int) -> tuple[int, int]:
        data, value, shift = self.data, 0, 0
        while True:
            if pos >= end:
                raise WireError("malformed", "message ends inside a varint")
            byte = data[pos]
            pos += 1
            value |= (byte & 0x7F) << shift
            if byte < 0x80:
                return value, pos
            shift += 7
            if shift > 63:
                raise WireError("malformed", "varint longer than 10 bytes")

    def message(self, pos: int, end: int, plan: Plan, room: int) -> int:
        """Walk one message; return how many more entries the budget allows. The hot
        loop of the relay's ingest, written for speed (one-byte tags and lengths inline)."""
        data, rules, short_tags, result = self.data, plan.rules, plan.short_tags, self.result
        counts: dict[str, int] = {}
        unknown = 0
        while pos < end:
            tag = data[pos]
            if tag < 0x80:
                pos += 1
                rule = short_tags[tag]
            else:
                tag, pos = self.varint(pos, end)
                rule = rules.get(tag)
            if rule is None:
                unknown += 1
                if unknown > MAX_UNKNOWN_FIELDS:
                    raise WireError("unknown_fields", f"over {MAX_UNKNOWN_FIELDS} unknown fields")
                rule = NEVER
            wire = tag & 7
            if wire == WIRE_LENGTH:
                length = data[pos] if pos < end else 0x80
                if length < 0x80:
                    pos += 1
                else:
                    length, pos = self.varint(pos, end)
                after = pos + length
                if after > end:
                    raise WireError("malformed", "a field runs past the end of its message")
                if type(rule) is int:
                    if length > rule:
                        result.needs_cut = True
                elif type(rule) is _Descend:
                    if length > rule.over:
                        room = self.message(pos, after, rule.plan, room)
                elif type(rule) is _Count:
                    key, cap, report_cap, string_bound, descend_over, child = rule
                    room -= 1
                    if room < 0:
                        raise WireError(
                            "too_many_entries",
                            f"over {self.max_entries} repeated entries in one message",
                        )
                    held = counts[key] = counts.get(key, 0) + 1
                    if held > cap or length > string_bound:
                        result.needs_cut = True
                    if report_cap:
                        self.count_in_report(key, report_cap)
                    if length > descend_over and child is not None:
                        room = self.message(pos, after, child, room)
                pos = after
            elif wire == WIRE_VARINT:
                while pos < end and data[pos] >= 0x80:
                    pos += 1
                pos += 1
            elif wire == WIRE_FIXED64:
                pos += 8
            elif wire == WIRE_FIXED32:
                pos += 4
            else:
                raise WireError("malformed", f"unsupported wire type {wire}")
        if pos != end:
            raise WireError("malformed", "a field runs past the end of its message")
        return room

    def count_in_report(self, cap_key: str, report_cap: int) -> None:
        totals = self.result.report_counts
        totals[cap_key] += 1
        if totals[cap_key] > report_cap:
            self.result.needs_cut = True


def scan(data: bytes, plan: Plan, max_entries: int) -> ScanResult:
    """Check `data` (a serialized message of `plan`'s type) without parsing it."""
    scanner = _Scanner(data, max_entries)
    room = scanner.message(0, len(data), plan, max_entries)
    scanner.result.entries = max_entries - room
    return scanner.result
