"""A receiver's queue on disk: append-only segment files and a persisted read position.

Layout of a queue directory:
    <20-digit start offset>.seg   records, appended; a segment is deleted once every
                                  record in it was sent or dropped
    position                      8 bytes: offset of the oldest record not yet done

A record is a header (payload length, CRC-32 of everything after the CRC, queued-at
time, sample count, collection time, node name length), the node name and the
snappy-compressed `WriteRequest`. Offsets are global byte positions across segments.

Durability: a record is written to the file (one write call) before `put` returns,
so a SIGKILLed relay finds it on restart; segment data and the position are fsynced
by `sync()` about once a second and at close, so a host crash loses at most that
second. The position advances to the oldest block still in flight, so a block that
was being sent when the process died is sent again (at least once). On start, a torn
record at the end of the newest segment is cut off, and every record's node and
collection time is handed to `on_recovered`, which restores the write order.
"""

from __future__ import annotations

import bisect
import logging
import os
import struct
import time
import zlib
from collections.abc import Callable
from pathlib import Path

from relay.export.queue import Block, DropCounter, Held

logger = logging.getLogger(__name__)

HEADER = struct.Struct("<IIdIqH")  # payload, crc32, appended_at, samples, collected_ms, node
CRC_FROM = 8  # the CRC covers the header after itself, the node name and the payload
POSITION = struct.Struct("<Q")
SUFFIX = ".seg"
MAX_NODE_BYTES = 1024
MIN_SEGMENT_BYTES = 1024 * 1024
MAX_SEGMENT_BYTES = 64 * 1024 * 1024


def _record(block: Block) -> bytes:
    node = block.node.encode()[:MAX_NODE_BYTES]
    rest = (
        HEADER.pack(
            len(block.payload), 0, block.appended_at, block.samples, block.collected_ms, len(node)
        )[CRC_FROM:]
        + node
        + block.payload
    )
    return struct.pack("<II", len(block.payload), zlib.crc32(rest)) + rest


class DiskQueue(Held):
    def __init__(
        self,
        directory: Path,
        max_bytes: int,
        max_age: float,
        on_drop: DropCounter,
        *,
        on_corrupt: Callable[[], None] = lambda: None,
        on_recovered: Callable[[str, int], None] = lambda node, ms: None,
        before_delete: Callable[[], None] = lambda: None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        super().__init__(max_bytes, max_age, on_drop, clock)
        self.directory = directory
        self.segment_bytes = min(MAX_SEGMENT_BYTES, max(MIN_SEGMENT_BYTES, max_bytes // 16))
        self._on_corrupt = on_corrupt
        self._before_delete = before_delete
        self._inflight: dict[int, tuple[int, int]] = {}  # offset -> (end, samples)
        self._dirty = False
        directory.mkdir(parents=True, exist_ok=True)
        self._starts = sorted(
            int(path.name.removesuffix(SUFFIX))
            for path in directory.glob(f"*{SUFFIX}")
            if path.name.removesuffix(SUFFIX).isdigit()
        )
        self._position_fd = os.open(directory / "position", os.O_RDWR | os.O_CREAT, 0o600)
        saved = os.pread(self._position_fd, POSITION.size, 0)
        first = self._starts[0] if self._starts else 0
        self._committed = max(POSITION.unpack(saved)[0], first) if len(saved) == 8 else first
        self._write_offset = self._recover(on_recovered)
        self._read_offset = self._committed
        self._fd = -1
        self._open_segment()
        if self._samples:
            logger.info(
                "remote-write queue %s: %s samples (%s bytes) waiting from before the restart",
                directory,
                self._samples,
                self._bytes,
            )

    def _path(self, start: int) -> Path:
        return self.directory / f"{start:020d}{SUFFIX}"

    def _recover(self, on_recovered: Callable[[str, int], None]) -> int:
        """Walk every record's header; return the end of the last whole record."""
        end = self._committed
        for index, start in enumerate(self._starts):
            path = self._path(start)
            size = path.stat().st_size
            offset = 0
            with path.open("rb") as file:
                while offset + HEADER.size <= size:
                    header = file.read(HEADER.size)
                    length, _, _, samples, collected_ms, node_length = HEADER.unpack(header)
                    total = HEADER.size + node_length + length
                    if offset + total > size:
                        break
                    node = file.read(node_length).decode(errors="replace")
                    file.seek(length, os.SEEK_CUR)
                    on_recovered(node, collected_ms)
                    if start + offset >= self._committed:
                        self._bytes += total
                        self._samples += samples
                    offset += total
            if offset < size and index == len(self._starts) - 1:
                logger.warning("remote-write queue %s: cut a torn record at %s", path, offset)
                os.truncate(path, offset)
            end = start + offset
        return max(end, self._committed)

    def _open_segment(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
        last = self._starts[-1] if self._starts else None
        if last is None or self._write_offset - last >= self.segment_bytes:
            self._starts.append(self._write_offset)
        path = self._path(self._starts[-1])
        self._fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)

    def put(self, block: Block) -> None:
        record = _record(block)
        with self._ready:
            view = memoryview(record)
            try:
                while view:
                    view = view[os.write(self._fd, view) :]
            except OSError:
                # a full disk must not leave half a record for the next one to follow
                os.ftruncate(self._fd, self._write_offset - self._starts[-1])
                raise
            self._write_offset += len(record)
            self._bytes += len(record)
            self._samples += block.samples
            self._dirty = True
            if self._write_offset - self._starts[-1] >= self.segment_bytes:
                os.fsync(self._fd)
                self._open_segment()
            self._ready.notify()

    def _segment_end(self, start_index: int) -> int:
        if start_index + 1 < len(self._starts):
            return self._starts[start_index + 1]
        return self._write_offset

    def get(self, timeout: float) -> Block | None:
        deadline = time.monotonic() + timeout
        with self._ready:
            while True:
                block = self._next()
                if block is not None:
                    return block
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return None
                self._ready.wait(remaining)

    def _next(self) -> Block | None:
        """The next sendable record, skipping (and counting) corrupt and expired ones."""
        while self._read_offset < self._write_offset:
            offset = self._read_offset
            index = bisect.bisect_right(self._starts, offset) - 1
            start, end = self._starts[index], self._segment_end(index)
            path = self._path(start)
            with path.open("rb") as file:
                file.seek(offset - start)
                raw = file.read(HEADER.size) if offset + HEADER.size <= end else b""
                if len(raw) < HEADER.size:
                    self._skip_to(end)
                    continue
                length, crc, appended_at, samples, collected_ms, node_length = HEADER.unpack(raw)
                total = HEADER.size + node_length + length
                if offset + total > end:
                    self._skip_to(end)
                    continue
                rest = file.read(node_length + length)
            self._read_offset = offset + total
            if zlib.crc32(raw[CRC_FROM:] + rest) != crc:
                self._on_corrupt()
                self._settle(total, samples)
                continue
            block = Block(
                payload=rest[node_length:],
                samples=samples,
                node=rest[:node_length].decode(errors="replace"),
                collected_ms=collected_ms,
                appended_at=appended_at,
                offset=offset,
            )
            if self.expired(block):
                self._on_drop(samples)
                self._settle(total, samples)
                continue
            self._inflight[offset] = (offset + total, samples)
            self._turns.handed_out(block)
            return block
        return None

    def _skip_to(self, end: int) -> None:
        """The rest of a segment cannot be read as records (never counted as held): move on."""
        self._on_corrupt()
        self._read_offset = end
        self._advance()

    def done(self, block: Block) -> None:
        with self._ready:
            if self._fd < 0:  # closed while the block was out: it is sent again next start
                return
            end, samples = self._inflight.pop(block.offset)
            self._settle(end - block.offset, samples)
            self._turns.finished(block)

    def _settle(self, total: int, samples: int) -> None:
        self._bytes -= total
        self._samples -= samples
        self._advance()

    def _advance(self) -> None:
        committed = min(self._inflight) if self._inflight else self._read_offset
        if committed <= self._committed:
            return
        self._committed = committed
        os.pwrite(self._position_fd, POSITION.pack(committed), 0)
        while len(self._starts) > 1 and self._starts[1] <= committed:
            self._before_delete()
            self._path(self._starts.pop(0)).unlink(missing_ok=True)

    def sync(self) -> None:
        with self._ready:
            if not self._dirty:
                return
            self._dirty = False
            os.fsync(self._fd)
            os.fsync(self._position_fd)

    def close(self) -> None:
        with self._ready:
            self._dirty = True
        self.sync()
        with self._ready:
            os.close(self._fd)
            os.close(self._position_fd)
            self._fd = self._position_fd = -1
            self._ready.notify_all()
