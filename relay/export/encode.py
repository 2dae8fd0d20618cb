"""One node's report as Prometheus remote-write protobuf, written by hand from the walk.

A `WriteRequest` is nothing but its `TimeSeries` entries (field 1) one after the
other, so a report's series are encoded once, each as complete field-1 bytes, and a
batch is their concatenation. Field numbers are prompb's (proto/prometheus/remote.proto,
whose generated classes the tests decode with). Hand encoding is what keeps this
cheap: a row's sorted label pieces are encoded once and shared by every family
measured on it, the `__name__` piece of each family name is cached, and all samples
of a report share one timestamp suffix.

Labels follow what a scraping Prometheus stores: sorted by name, empty values left
out, external labels added only where the series has no label of that name.

A row (a container, a pod's interface...) that was in a node's previous report and is
not in this one has ended: its series get the staleness marker at this report's time,
as a scraping Prometheus writes it when a series leaves a target and as the protocol
asks of senders. Rows are told apart by a hash of their subject and labels, so a relay
keeps a few dozen bytes per row of each node, and the previous report (which the
store holds anyway) is walked again only when a row ended.
"""

from __future__ import annotations

import bisect
import struct
from collections.abc import Mapping, Sequence
from typing import Any

from relay.series.rows import NodeContext
from relay.series.spec import Family, Profile, Subject
from relay.series.walk import walk

NAME_LABEL = "__name__"
# Family names come from the declarations, plus the few a report names (meminfo fields):
# bounded so a report full of odd names cannot grow the cache.
NAME_CACHE_LIMIT = 4096
_pack_double = struct.Struct("<d").pack
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


class NamePieces:
    """`__name__` label pieces per family name, shared by every report a relay encodes."""

    def __init__(self, limit: int = NAME_CACHE_LIMIT) -> None:
        self._pieces: dict[str, bytes] = {}
        self._limit = limit

    def get(self, name: str) -> bytes:
        piece = self._pieces.get(name)
        if piece is None:
            piece = label_piece(NAME_LABEL, name)
            if len(self._pieces) < self._limit:
                self._pieces[name] = piece
        return piece


class RemoteWriteSink:
    """Receives the walk of one report and keeps each sample as an encoded `TimeSeries`."""

    def __init__(
        self,
        timestamp_ms: int,
        external_labels: Mapping[str, str],
        names: NamePieces,
    ) -> None:
        self.series: list[bytes] = []
        self.rows: set[int] = set()  # a hash of each row's subject and labels
        self._external = dict(external_labels)
        self._names = names
        time_suffix = _SAMPLE_TIME_TAG + varint(timestamp_ms)
        # every Sample of the report is: head, 8 bytes of the value, the shared time suffix
        self._sample_head = _VALUE_TAG + varint(9 + len(time_suffix)) + _SAMPLE_VALUE_TAG
        self._time_suffix = time_suffix
        self._row_labels: dict[str, str] = {}
        # rows of one report repeat most label values (node, namespace, pod): encode each once
        self._pieces: dict[tuple[str, str], bytes] = {}
        self._before_name = b""
        self._after_name = b""
        self._row_key = 0

    def row(self, subject: Subject[Any], labels: Mapping[str, str]) -> None:
        merged = {**self._external, **labels} if self._external else dict(labels)
        self._row_labels = merged
        ordered = sorted(item for item in merged.items() if item[1])
        split = bisect.bisect_left(ordered, (NAME_LABEL,))
        piece = self._piece
        self._before_name = b"".join([piece(item) for item in ordered[:split]])
        self._after_name = b"".join([piece(item) for item in ordered[split:]])
        self._row_key = hash((subject.name, self._before_name, self._after_name))
        self.rows.add(self._row_key)

    def _piece(self, item: tuple[str, str]) -> bytes:
        piece = self._pieces.get(item)
        if piece is None:
            piece = self._pieces[item] = label_piece(*item)
        return piece

    def sample(
        self, family: Family[Any], name: str, labels: Mapping[str, str] | None, value: float
    ) -> None:
        if labels is None:
            body = b"".join(
                (
                    self._before_name,
                    self._names.get(name),
                    self._after_name,
                    self._sample_head,
                    _pack_double(value),
                    self._time_suffix,
                )
            )
        else:
            body = b"".join(
                (
                    self._labels_with(name, labels),
                    self._sample_head,
                    _pack_double(value),
                    self._time_suffix,
                )
            )
        size = len(body)
        if 0x80 <= size < 0x4000:  # the usual series: a two-byte length, written in place
            self.series.append(b"\x0a" + bytes(((size & 0x7F) | 0x80, size >> 7)) + body)
        else:
            self.series.append(_SERIES_TAG + varint(size) + body)

    def _labels_with(self, name: str, labels: Mapping[str, str]) -> bytes:
        """The slow path for families with labels of their own (a CPU mode, a device...)."""
        merged = {**self._row_labels, **labels}
        merged[NAME_LABEL] = name
        piece = self._piece
        return b"".join([piece(item) for item in sorted(merged.items()) if item[1]])


class StaleSink(RemoteWriteSink):
    """Writes the staleness marker for every sample of the rows that ended, nothing else."""

    def __init__(
        self,
        ended: set[int],
        timestamp_ms: int,
        external_labels: Mapping[str, str],
        names: NamePieces,
    ) -> None:
        super().__init__(timestamp_ms, external_labels, names)
        self._ended = ended
        self._ending = False

    def row(self, subject: Subject[Any], labels: Mapping[str, str]) -> None:
        super().row(subject, labels)
        self._ending = self._row_key in self._ended

    def sample(
        self, family: Family[Any], name: str, labels: Mapping[str, str] | None, value: float
    ) -> None:
        if self._ending:
            super().sample(family, name, labels, STALE_NAN)


def encode_node(
    profiles: Sequence[Profile],
    context: NodeContext,
    external_labels: Mapping[str, str],
    names: NamePieces,
) -> RemoteWriteSink:
    """Every sample of one node's report, each an encoded `TimeSeries` with one sample
    (`.series`), and the report's rows (`.rows`)."""
    timestamp_ms = context.report.collected_at_unix_nanos // 1_000_000
    sink = RemoteWriteSink(timestamp_ms, external_labels, names)
    walk(profiles, context, sink)
    return sink


def stale_markers(
    profiles: Sequence[Profile],
    previous: NodeContext,
    *,
    ended: set[int],
    timestamp_ms: int,
    external_labels: Mapping[str, str],
    names: NamePieces,
) -> list[bytes]:
    """Staleness markers at `timestamp_ms` for the series of `previous`'s rows that ended."""
    sink = StaleSink(ended, timestamp_ms, external_labels, names)
    walk(profiles, previous, sink)
    return sink.series


def batches(series: list[bytes], max_samples: int) -> list[tuple[bytes, int]]:
    """`WriteRequest` bodies of at most `max_samples` series each, with their sample counts."""
    return [
        (b"".join(series[start : start + max_samples]), len(series[start : start + max_samples]))
        for start in range(0, len(series), max_samples)
    ]
