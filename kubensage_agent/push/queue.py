"""Reports waiting for a relay's acknowledgement, oldest first, bounded in count.

With a spool the reports live on disk (and survive restarts) and only their sequence
numbers are held in memory; without one they are held in memory.

Reports are put by the collection thread while the stream's loop sends and
acknowledges them, so the bookkeeping (the order, the reports in memory, what the spool
counts as held) changes under one lock. File writes and deletions happen outside it: a
stalled disk stalls the thread doing the I/O, never the other side waiting for the lock.
"""

from __future__ import annotations

import asyncio
import threading
from collections import deque

from kubensage_agent.state.spool import Spool
from kubensage_api.telemetry import telemetry_pb2 as tm


class ReportQueue:
    """When full, the oldest report is dropped and counted: fresh data beats old data."""

    def __init__(self, capacity: int, spool: Spool | None = None) -> None:
        if capacity < 1:
            raise ValueError("queue capacity must be at least 1")
        self.capacity = capacity
        self.spool = spool
        self.dropped_total = 0
        self.spool_write_errors = 0
        self._order: deque[int] = deque()
        self._memory: dict[int, tm.Metrics] = {}
        self._lock = threading.Lock()
        self._changed = asyncio.Event()
        # the loop that waits in `wait_changed`, recorded by its first wait; a report put
        # before that is found by the `after()` that precedes every wait
        self._loop: asyncio.AbstractEventLoop | None = None
        if spool is not None:
            loaded = spool.load()
            for report in loaded[:-capacity]:
                spool.remove(report.sequence)
                self.dropped_total += 1
            self.dropped_total += spool.evicted_total
            for report in loaded[-capacity:]:
                self._order.append(report.sequence)

    def put(self, report: tm.Metrics) -> None:
        spooled = self._write_file(report)
        with self._lock:
            discarded = []
            while len(self._order) >= self.capacity:
                discarded.append(self._order.popleft())
                self._forget(discarded[-1])  # before the caps count what the spool holds
                self.dropped_total += 1
            if spooled is None or self.spool is None:
                self._memory[report.sequence] = report
            else:
                self.spool.record(report, spooled)
            self._order.append(report.sequence)
            if self.spool is not None:
                for sequence in self.spool.enforce_caps():  # forgotten by the spool itself
                    if sequence in self._order:
                        self._order.remove(sequence)
                        self.dropped_total += 1
                    discarded.append(sequence)
        self._delete_files(discarded)
        self.wake()

    def _write_file(self, report: tm.Metrics) -> int | None:
        """The report's spool record written, its size; None to keep it in memory."""
        if self.spool is None:
            return None
        try:
            return self.spool.write_file(report)
        except OSError:
            with self._lock:
                self.spool_write_errors += 1  # disk full or gone: keep it in memory instead
            return None

    def _load(self, sequence: int) -> tm.Metrics | None:
        report = self._memory.get(sequence)
        if report is None and self.spool is not None:
            report = self.spool.read(sequence)
        return report

    def _forget(self, sequence: int) -> None:
        self._memory.pop(sequence, None)
        if self.spool is not None:
            self.spool.forget(sequence)

    def _delete_files(self, sequences: list[int]) -> None:
        if self.spool is not None:
            for sequence in sequences:
                self.spool.delete_file(sequence)

    def ack(self, sequence: int) -> int:
        """Forget every report up to `sequence`; return how many were released."""
        released = []
        with self._lock:
            while self._order and self._order[0] <= sequence:
                released.append(self._order.popleft())
                self._forget(released[-1])
        self._delete_files(released)
        if released:
            self._changed.set()
        return len(released)

    def after(self, sequence: int) -> tm.Metrics | None:
        """The oldest report newer than `sequence`, i.e. the next one to send."""
        with self._lock:
            for held in list(self._order):
                if held <= sequence:
                    continue
                report = self._load(held)
                if report is not None:
                    return report
                self._order.remove(held)  # unreadable record: already counted by the spool
        return None

    @property
    def highest_sequence(self) -> int:
        with self._lock:
            return self._order[-1] if self._order else 0

    def wake(self) -> None:
        """Release whoever waits in wait_changed, e.g. a writer that must notice a stop.

        Safe from any thread: reports are put by the collection thread, and an
        asyncio.Event set outside its loop's thread may leave the loop asleep."""
        loop = self._loop
        if loop is None or loop.is_closed():
            self._changed.set()  # nobody waits yet: the read before the first wait finds it
        else:
            loop.call_soon_threadsafe(self._changed.set)

    async def wait_changed(self) -> None:
        self._loop = asyncio.get_running_loop()
        await self._changed.wait()
        self._changed.clear()

    def __len__(self) -> int:
        return len(self._order)
