"""Reports waiting for a relay's acknowledgement, oldest first, bounded in count."""

from __future__ import annotations

import asyncio
from collections import deque

from kubensage_api.telemetry import telemetry_pb2 as tm


class ReportQueue:
    """When full, the oldest report is dropped and counted: fresh data beats old data."""

    def __init__(self, capacity: int) -> None:
        if capacity < 1:
            raise ValueError("queue capacity must be at least 1")
        self.capacity = capacity
        self.dropped_total = 0
        self._reports: deque[tm.Metrics] = deque()
        self._changed = asyncio.Event()

    def put(self, report: tm.Metrics) -> None:
        if len(self._reports) >= self.capacity:
            self._reports.popleft()
            self.dropped_total += 1
        self._reports.append(report)
        self._changed.set()

    def ack(self, sequence: int) -> int:
        """Forget every report up to `sequence`; return how many were released."""
        released = 0
        while self._reports and self._reports[0].sequence <= sequence:
            self._reports.popleft()
            released += 1
        if released:
            self._changed.set()
        return released

    def after(self, sequence: int) -> tm.Metrics | None:
        """The oldest report newer than `sequence`, i.e. the next one to send."""
        for report in self._reports:
            if report.sequence > sequence:
                return report
        return None

    def wake(self) -> None:
        """Release whoever waits in wait_changed, e.g. a writer that must notice a stop."""
        self._changed.set()

    async def wait_changed(self) -> None:
        await self._changed.wait()
        self._changed.clear()

    def __len__(self) -> int:
        return len(self._reports)
