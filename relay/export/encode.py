"""One node's report as Prometheus remote-write protobuf, written by hand from the walk.

A `WriteRequest` is nothing but its `TimeSeries` entries (field 1) one after the
other, so a report's series are encoded once, each as complete field-1 bytes, and a
batch is their concatenation. Field numbers are prompb's (proto/prometheus/remote.proto,
whose generated classes the tests decode with). Hand encoding is what keeps this
cheap: each subject's label order is worked out once per relay, never sorted per
series; a row's label pieces are encoded once and shared by every family measured on
it; the `__name__` piece of each family name is cached; and every sample of a report
is one packed value between the report's shared sample head and timestamp.

Labels follow what a scraping Prometheus stores: sorted by name, empty values left
out, external labels added only where the series has no label of that name (an empty
value is no label, so the external one fills it).

A series that was in a node's previous report and is not in this one has ended: it
gets the staleness marker at this report's time, as a scraping Prometheus writes it
when a series leaves a target and as the protocol asks of senders. That covers a row
(a container, a pod's interface...) that ended and a figure a row that stays no longer
reports. Rows are told apart by a hash of their subject and labels and each row's
series by one digest, so a relay keeps about a hundred bytes per row of each node, and the
previous report (which the store holds anyway) is walked again only when a row changed.
"""

from __future__ import annotations

import bisect
import struct
from collections.abc import Callable, Mapping, Sequence, Set
from dataclasses import dataclass
from typing import Any

from relay.series.rows import NodeContext
from relay.series.spec import Family, Profile, Subject
from relay.series.walk import walk

NAME_LABEL = "__name__"
# Family names come from the declarations, plus the few a report names (meminfo fields):
# bounded so a report full of odd names cannot grow the cache.
NAME_CACHE_LIMIT = 4096

_LABEL_TAG = b"\x0a"  # TimeSeries.labels = 1, and Label.name = 1 (length-delimited)
_VALUE_TAG = b"\x12"  # Label.value = 2 and TimeSeries.samples = 2 (length-delimited)
_SERIES_TAG = b"\x0a"  # WriteRequest.timeseries = 1
_SAMPLE_VALUE_TAG = b"\x09"  # Sample.value = 1 (fixed64)
_SAMPLE_TIME_TAG = b"\x10"  # Sample.timestamp = 2 (varint)
STALE_NAN = struct.unpack("<d", (0x7FF0000000000002).to_bytes(8, "little"))[0]


_SMALL = [bytes((n,)) for n in range(0x80)]


def varint(value: int) -> bytes:
    """Protobuf base-128 varint of a non-negative int (negative int64 as two's complement)."""
    if 0 <= value < 0x80:
        return _SMALL[value]
    if value < 0:
        value += 1 << 64
    out = bytearray()
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


_name_fields: dict[str, bytes] = {}


def _name_field(name: str) -> bytes:
    """`Label.name` with its tag; label names are few (declared, external, pod label keys)."""
    field = _name_fields.get(name)
    if field is None:
        encoded = name.encode()
        field = _LABEL_TAG + varint(len(encoded)) + encoded
        if len(_name_fields) < NAME_CACHE_LIMIT:
            _name_fields[name] = field
    return field


def label_piece(name: str, value: str) -> bytes:
    """One `TimeSeries.labels` entry, tag included."""
    encoded = value.encode()
    inner = _name_field(name) + _VALUE_TAG + varint(len(encoded)) + encoded
    return _LABEL_TAG + varint(len(inner)) + inner


_series_heads: dict[int, bytes] = {}


def _series_head(size: int) -> bytes:
    """`WriteRequest.timeseries` tag and length; sizes repeat, so the usual ones are kept."""
    head = _series_heads.get(size)
    if head is None:
        head = _SERIES_TAG + varint(size)
        if size < 0x4000:  # two varint bytes: a bounded table
            _series_heads[size] = head
    return head


@dataclass(frozen=True, slots=True)
class _RowLayout:
    """A subject's label names in series order, each with the external label's value as
    its default; `__name__` goes between the first `split` and the rest."""

    names: tuple[tuple[str, str], ...]
    split: int


# Where each label of a family with labels of its own comes from, in series order: an int
# is the index of the row's piece (NAME_SLOT the family name's), a pair is one of the
# family's own labels with the external label's value as its default.
NAME_SLOT = -1
_Slot = int | tuple[str, str]


class Encoding:
    """What every report a relay encodes shares: the external labels, the `__name__`
    piece of each family name, and each subject's and labelled family's label order,
    worked out once instead of sorting every series' labels."""

    def __init__(self, external_labels: Mapping[str, str], limit: int = NAME_CACHE_LIMIT) -> None:
        self.external = dict(external_labels)
        self.name_pieces: dict[str, bytes] = {}
        self._limit = limit
        self._row_layouts: dict[Subject[Any], _RowLayout] = {}
        self._family_layouts: dict[Family[Any], tuple[_Slot, ...]] = {}

    def name_piece(self, name: str) -> bytes:
        piece = self.name_pieces.get(name)
        if piece is None:
            piece = label_piece(NAME_LABEL, name)
            if len(self.name_pieces) < self._limit:
                self.name_pieces[name] = piece
        return piece

    def row_layout(self, subject: Subject[Any]) -> _RowLayout:
        layout = self._row_layouts.get(subject)
        if layout is None:
            names = sorted({*subject.labels, *self.external})
            layout = self._row_layouts[subject] = _RowLayout(
                tuple((name, self.external.get(name, "")) for name in names),
                bisect.bisect_left(names, NAME_LABEL),
            )
        return layout

    def family_layout(self, family: Family[Any]) -> tuple[_Slot, ...]:
        """The label slots of a family with labels of its own (declared, not dynamic)."""
        slots = self._family_layouts.get(family)
        if slots is None:
            row = self.row_layout(family.subject)
            index = {name: position for position, (name, _) in enumerate(row.names)}
            names = sorted({*index, *family.labels, NAME_LABEL})
            slots = self._family_layouts[family] = tuple(
                NAME_SLOT
                if name == NAME_LABEL
                else (name, self.external.get(name, ""))
                if name in family.labels
                else index[name]
                for name in names
            )
        return slots


class RemoteWriteSink:
    """Receives the walk of one report and keeps each sample as an encoded `TimeSeries`."""

    def __init__(self, timestamp_ms: int, encoding: Encoding) -> None:
        self.series: list[bytes] = []
        # each row (by a hash of its subject and labels) and what tells its series apart:
        # the family name, or the labels' bytes of a family with labels of its own
        self.rows: dict[int, list[object]] = {}
        no_row: list[object] = []
        self._remember: Callable[[object], None] = no_row.append  # to the current row's entry
        self._encoding = encoding
        self._names = encoding.name_pieces  # read directly on the per-sample path
        time_suffix = _SAMPLE_TIME_TAG + varint(timestamp_ms)
        # every Sample of the report is: its tag and length, the value's tag, 8 bytes of
        # the value, then the shared time
        sample_head = _VALUE_TAG + varint(9 + len(time_suffix)) + _SAMPLE_VALUE_TAG
        self._sample_head, self._time_suffix = sample_head, time_suffix
        self._sample = struct.Struct(f"<{len(sample_head)}sd{len(time_suffix)}s").pack
        self._sample_size = len(sample_head) + 8 + len(time_suffix)
        # rows of one report repeat most label values (node, namespace, pod): encode each once
        self._pieces: dict[tuple[str, str], bytes] = {}
        self._row_pieces: list[bytes] = []  # in the row layout's order, b"" for an empty value
        self._before_name = b""
        self._after_name = b""
        self._row_size = 0
        self._row_key = 0

    def row(self, subject: Subject[Any], labels: Mapping[str, str]) -> None:
        self._enter_row(subject, labels)
        self._remember = self.rows.setdefault(self._row_key, []).append

    def _enter_row(self, subject: Subject[Any], labels: Mapping[str, str]) -> None:
        """Encode the row's label pieces, shared by the series of every family on it."""
        layout = self._encoding.row_layout(subject)
        cached, piece = self._pieces.get, self._piece
        pieces = []
        for name, default in layout.names:
            value = labels.get(name) or default
            pieces.append((cached((name, value)) or piece(name, value)) if value else b"")
        self._row_pieces = pieces
        self._before_name = before = b"".join(pieces[: layout.split])
        self._after_name = after = b"".join(pieces[layout.split :])
        self._row_size = len(before) + len(after) + self._sample_size
        self._row_key = hash((subject.name, before, after))

    def digests(self) -> dict[int, int]:
        """Each row's key and a digest of its series: equal digests, same series. Rows are
        keyed by their labels, so rows listed in another order (pods, containers) change
        nothing; within a row the series follow the declarations, and should their order
        ever differ the cost is one walk of the previous report, which finds nothing
        ended. Rows with equal labels are one row, as their series are one series to the
        receiver."""
        return {row: hash(tuple(series)) for row, series in self.rows.items()}

    def _piece(self, name: str, value: str) -> bytes:
        """The label's piece, b"" for an empty value (Prometheus keeps no empty label)."""
        if not value:
            return b""
        key = (name, value)
        piece = self._pieces.get(key)
        if piece is None:
            piece = self._pieces[key] = label_piece(name, value)
        return piece

    def sample(
        self, family: Family[Any], name: str, labels: Mapping[str, str] | None, value: float
    ) -> None:
        if labels is None:  # the hot path, inlined: most series have only the row's labels
            self._remember(name)
            name_piece = self._names.get(name) or self._encoding.name_piece(name)
            self.series.append(
                b"".join(
                    (
                        _series_head(self._row_size + len(name_piece)),
                        self._before_name,
                        name_piece,
                        self._after_name,
                        self._sample(self._sample_head, value, self._time_suffix),
                    )
                )
            )
            return
        self._write_labelled(self._labels_with(family, name, labels), value)

    def _write_labelled(self, label_bytes: bytes, value: float) -> None:
        """One series of a family with labels of its own, its labels already encoded."""
        self._remember(label_bytes)
        body = label_bytes + self._sample(self._sample_head, value, self._time_suffix)
        self.series.append(_series_head(len(body)) + body)

    def _labels_with(self, family: Family[Any], name: str, labels: Mapping[str, str]) -> bytes:
        """The labels of a family with labels of its own (a CPU mode, a device...)."""
        piece = self._piece
        if family.dynamic_labels is not None:  # names from the data: sorted here
            layout = self._encoding.row_layout(family.subject)
            merged = {
                label: value
                for (label, _), value in zip(layout.names, self._row_pieces, strict=True)
                if value
            }
            merged.update({label: piece(label, value) for label, value in labels.items()})
            merged[NAME_LABEL] = self._encoding.name_piece(name)
            return b"".join([merged[label] for label in sorted(merged)])
        row = self._row_pieces
        parts = []
        for slot in self._encoding.family_layout(family):
            if isinstance(slot, int):
                parts.append(self._encoding.name_piece(name) if slot == NAME_SLOT else row[slot])
            else:
                label, default = slot
                parts.append(piece(label, labels[label] or default))
        return b"".join(parts)


# the rows of a previous report that changed, each with its series still written (the
# `RemoteWriteSink.rows` entries of the current report; empty when the whole row ended)
ChangedRows = Mapping[int, Set[object]]


class StaleSink(RemoteWriteSink):
    """Writes the staleness marker for every series of the changed rows that is no
    longer written, nothing else."""

    def __init__(self, changed: ChangedRows, timestamp_ms: int, encoding: Encoding) -> None:
        super().__init__(timestamp_ms, encoding)
        self._remember = _remember_nothing  # the markers' series are never compared again
        self._changed = changed
        self._kept: Set[object] | None = None  # None: the row did not change

    def row(self, subject: Subject[Any], labels: Mapping[str, str]) -> None:
        self._enter_row(subject, labels)
        self._kept = self._changed.get(self._row_key)

    def sample(
        self, family: Family[Any], name: str, labels: Mapping[str, str] | None, value: float
    ) -> None:
        kept = self._kept
        if kept is None:
            return
        if labels is None:
            if name not in kept:
                super().sample(family, name, None, STALE_NAN)
            return
        label_bytes = self._labels_with(family, name, labels)  # encoded once, checked, written
        if label_bytes not in kept:
            self._write_labelled(label_bytes, STALE_NAN)


def _remember_nothing(_: object) -> None:
    pass


def encode_node(
    profiles: Sequence[Profile], context: NodeContext, encoding: Encoding
) -> RemoteWriteSink:
    """Every sample of one node's report, each an encoded `TimeSeries` with one sample
    (`.series`), and the report's rows with their series (`.rows`, `.digests()`)."""
    timestamp_ms = context.report.collected_at_unix_nanos // 1_000_000
    sink = RemoteWriteSink(timestamp_ms, encoding)
    walk(profiles, context, sink)
    return sink


def changed_rows(
    previous: Mapping[int, int], current: RemoteWriteSink, digests: Mapping[int, int]
) -> dict[int, frozenset[object]]:
    """The previous report's rows (their digests) whose series differ in `current` (whose
    `digests()` are given), each with its series `current` still writes."""
    return {
        row: frozenset(current.rows.get(row, ()))
        for row, digest in previous.items()
        if digests.get(row) != digest
    }


def stale_markers(
    profiles: Sequence[Profile],
    previous: NodeContext,
    *,
    changed: ChangedRows,
    timestamp_ms: int,
    encoding: Encoding,
) -> list[bytes]:
    """Staleness markers at `timestamp_ms` for the series of `previous`'s changed rows
    that are no longer written."""
    sink = StaleSink(changed, timestamp_ms, encoding)
    walk(profiles, previous, sink)
    return sink.series


def batches(series: list[bytes], max_samples: int) -> list[tuple[bytes, int]]:
    """`WriteRequest` bodies of at most `max_samples` series each, with their sample counts."""
    chunks = [series[start : start + max_samples] for start in range(0, len(series), max_samples)]
    return [(b"".join(chunk), len(chunk)) for chunk in chunks]
