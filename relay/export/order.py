"""Per node, the newest collection time written: samples never go backwards in a series.

Every series of a node carries the report's collection time, so one watermark per
node decides for all of its series. A report collected after the watermark is
written (a late report of an agent's spool fills the gap behind it); one collected
at the watermark is a duplicate, one before it is out of order; both are dropped and
counted, since receivers reject (or double) samples that do not move forward.

With a disk queue the watermarks outlive the process: `save()` writes them to a file
(atomically), the queue calls it before deleting a segment, and on start the file is
read and every record still on disk is replayed into it, so a report queued just
before a SIGKILL and sent again by its agent is not written twice.
"""

from __future__ import annotations

import enum
import json
import logging
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path

logger = logging.getLogger(__name__)

# A node silent this long is forgotten: its next report, however old, is written.
FORGET_AFTER_SECONDS = 7 * 86400.0


class Verdict(enum.Enum):
    WRITE = "written"
    DUPLICATE = "duplicate"
    OUT_OF_ORDER = "out_of_order"


class WriteOrder:
    def __init__(self, path: Path | None = None, clock: Callable[[], float] = time.time) -> None:
        self.path = path
        self._clock = clock
        self._newest: dict[str, int] = {}
        self._dirty = False
        self._lock = threading.Lock()
        if path is not None and path.exists():
            self._load(path)

    def _load(self, path: Path) -> None:
        try:
            data = json.loads(path.read_text())
            self._newest = {str(node): int(ms) for node, ms in data.items()}
        except (OSError, ValueError, AttributeError) as exc:
            logger.warning("remote-write order file %s unreadable (%s); starting empty", path, exc)

    def verdict(self, node: str, collected_ms: int) -> Verdict:
        with self._lock:
            newest = self._newest.get(node)
        if newest is None or collected_ms > newest:
            return Verdict.WRITE
        return Verdict.DUPLICATE if collected_ms == newest else Verdict.OUT_OF_ORDER

    def written(self, node: str, collected_ms: int) -> None:
        with self._lock:
            if collected_ms > self._newest.get(node, -1):
                self._newest[node] = collected_ms
                self._dirty = True

    def save(self) -> None:
        """Write the watermarks if they changed, forgetting nodes silent for a week."""
        if self.path is None:
            return
        with self._lock:
            if not self._dirty:
                return
            horizon = (self._clock() - FORGET_AFTER_SECONDS) * 1000
            self._newest = {node: ms for node, ms in self._newest.items() if ms >= horizon}
            text = json.dumps(self._newest)
            self._dirty = False
            temporary = self.path.with_suffix(".tmp")
            temporary.write_text(text)
            os.replace(temporary, self.path)

    def __len__(self) -> int:
        return len(self._newest)
