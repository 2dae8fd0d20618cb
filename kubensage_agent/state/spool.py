"""Unacknowledged reports on disk, so an agent restart (or SIGKILL) loses none of them.

One file per report, `<sequence>.report`, framed as magic, length, CRC32, payload and
written through temp file + fsync + rename: after a crash a record is whole or absent.
A record that fails its check anyway (disk trouble, manual edits) is removed and
counted, never fatal. Caps on total bytes and on age evict the oldest first.
"""

from __future__ import annotations

import contextlib
import logging
import struct
import time
import zlib
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

from google.protobuf.message import DecodeError

from kubensage_agent.state.files import write_atomically
from kubensage_api.telemetry import telemetry_pb2 as tm

logger = logging.getLogger(__name__)

MAGIC = b"KSR1"
HEADER = struct.Struct(">4sII")  # magic, payload length, crc32
SUFFIX = ".report"


class CorruptRecordError(ValueError):
    """A spooled record failed its framing or checksum."""


def encode_record(payload: bytes) -> bytes:
    return HEADER.pack(MAGIC, len(payload), zlib.crc32(payload)) + payload


def decode_record(data: bytes) -> bytes:
    if len(data) < HEADER.size:
        raise CorruptRecordError("record shorter than its header")
    magic, length, crc = HEADER.unpack_from(data)
    payload = data[HEADER.size :]
    if magic != MAGIC:
        raise CorruptRecordError("bad magic")
    if len(payload) != length:
        raise CorruptRecordError(f"payload is {len(payload)} bytes, header says {length}")
    if zlib.crc32(payload) != crc:
        raise CorruptRecordError("checksum mismatch")
    return payload


@dataclass(frozen=True)
class _Held:
    size: int
    collected_at_unix_nanos: int


class Spool:
    def __init__(self, folder: Path, max_bytes: int, max_age_seconds: float) -> None:
        self.folder = folder
        self.max_bytes = max_bytes
        self.max_age_seconds = max_age_seconds
        self.corrupt_total = 0
        self.evicted_total = 0
        self._held: OrderedDict[int, _Held] = OrderedDict()
        self._bytes = 0
        folder.mkdir(parents=True, exist_ok=True)

    def _path(self, sequence: int) -> Path:
        return self.folder / f"{sequence:020d}{SUFFIX}"

    def load(self) -> list[tm.Metrics]:
        """Reports left by an earlier run, oldest first; damaged records are dropped and counted."""
        for leftover in self.folder.glob(".*.tmp"):
            leftover.unlink(missing_ok=True)
        reports = []
        for path in sorted(self.folder.glob(f"*{SUFFIX}")):
            try:
                report = tm.Metrics.FromString(decode_record(path.read_bytes()))
            except (CorruptRecordError, DecodeError, OSError) as exc:
                self.corrupt_total += 1
                logger.warning("spool record %s is damaged (%s); dropped", path.name, exc)
                path.unlink(missing_ok=True)
                continue
            self.record(report, path.stat().st_size)
            reports.append(report)
        evicted = set(self.enforce_caps())
        for sequence in evicted:
            self.delete_file(sequence)
        return [r for r in reports if r.sequence not in evicted]

    def record(self, report: tm.Metrics, size: int) -> None:
        """Count a record written by `write_file` as held."""
        self._held[report.sequence] = _Held(size, report.collected_at_unix_nanos)
        self._bytes += size

    def write_file(self, report: tm.Metrics) -> int:
        """Write the report's record durably; return its size. Touches no shared state, so
        the slow part (two fsyncs) can run outside whatever lock guards the bookkeeping."""
        data = encode_record(report.SerializeToString())
        write_atomically(self._path(report.sequence), data)
        return len(data)

    def read(self, sequence: int) -> tm.Metrics | None:
        try:
            return tm.Metrics.FromString(decode_record(self._path(sequence).read_bytes()))
        except (CorruptRecordError, DecodeError, OSError) as exc:
            self.corrupt_total += 1
            logger.warning("spool record %s unreadable (%s); dropped", sequence, exc)
            self.remove(sequence)
            return None

    def remove(self, sequence: int) -> None:
        self.forget(sequence)
        self.delete_file(sequence)

    def forget(self, sequence: int) -> None:
        """Stop counting a record as held; its file is deleted by `delete_file`."""
        held = self._held.pop(sequence, None)
        if held is not None:
            self._bytes -= held.size

    def delete_file(self, sequence: int) -> None:
        with contextlib.suppress(FileNotFoundError):
            self._path(sequence).unlink()

    def enforce_caps(self) -> list[int]:
        """Forget the oldest records beyond the byte cap or past the age cap and return
        them: the caller deletes their files (`delete_file`)."""
        evicted = []
        oldest_allowed = time.time_ns() - int(self.max_age_seconds * 1e9)
        for sequence, held in list(self._held.items()):
            too_big = self._bytes > self.max_bytes and len(self._held) > 1
            if not too_big and held.collected_at_unix_nanos >= oldest_allowed:
                break
            self.forget(sequence)
            evicted.append(sequence)
        self.evicted_total += len(evicted)
        return evicted

    @property
    def bytes_held(self) -> int:
        return self._bytes
