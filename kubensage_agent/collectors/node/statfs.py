"""statfs(2) under a deadline, so a mount that never answers (a dead NFS server, a hung
FUSE daemon) costs that mount, never the cycle or the agent.

A syscall cannot be cancelled, so the calls run on daemon threads and the cycle waits
for them only until its deadline. One thread takes a cycle's mounts in turn (one
handoff per cycle, not per mount, to a thread kept waiting between cycles); when it
makes no progress for a while, another thread continues the list, up to a fixed number
of threads. A call that has not returned keeps its thread, and its mount is skipped (at
most one call per mount) until the call returns.
"""

from __future__ import annotations

import os
import queue
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

# Threads a stuck mount can hold; more stuck mounts than this leave the rest unanswered
# until one returns, instead of growing without bound.
MAX_THREADS = 8
# No answer for this long: the thread is presumed stuck and another one continues.
STALL_SECONDS = 0.1
# A thread left without work this long ends (a new one starts when needed).
IDLE_SECONDS = 120.0

StatfsAnswer = os.statvfs_result | OSError


@dataclass
class _Batch:
    """One cycle's calls, shared by the threads working on them."""

    pending: deque[str]
    answers: dict[str, StatfsAnswer] = field(default_factory=dict)
    workers: int = 0
    answered: int = 0
    open: bool = True
    # set when the last thread working on the batch has left it
    finished: threading.Event = field(default_factory=threading.Event)


class StatfsRunner:
    def __init__(
        self,
        timeout: float,
        statfs: Callable[[str], os.statvfs_result] = os.statvfs,
        max_threads: int = MAX_THREADS,
        stall_seconds: float = STALL_SECONDS,
        idle_seconds: float = IDLE_SECONDS,
    ) -> None:
        self.timeout = timeout
        self.statfs = statfs
        self.max_threads = max_threads
        self.stall_seconds = stall_seconds
        self.idle_seconds = idle_seconds
        self._lock = threading.Lock()
        # every path whose call has not returned
        self._in_call: set[str] = set()
        self._threads = 0
        # threads blocked on _work_queue, and batches put there not yet taken
        self._waiting = 0
        self._queued = 0
        self._work_queue: queue.SimpleQueue[_Batch] = queue.SimpleQueue()

    @property
    def threads(self) -> int:
        """Threads alive: held by a call, working a batch, or waiting for the next."""
        with self._lock:
            return self._threads

    def outstanding(self) -> frozenset[str]:
        """Paths whose statfs has not returned (stuck ones, once a cycle has ended)."""
        with self._lock:
            return frozenset(self._in_call)

    def run(self, paths: Iterable[str]) -> dict[str, StatfsAnswer]:
        """Answers for the paths that answered before the deadline; a path with a call
        still outstanding is not called again and gets no answer."""
        deadline = time.monotonic() + self.timeout
        with self._lock:
            batch = _Batch(deque(path for path in paths if path not in self._in_call))
        answered_before = -1
        while batch.pending or batch.workers:
            with self._lock:
                stalled = batch.answered == answered_before
                answered_before = batch.answered
                if batch.pending and (batch.workers == 0 or stalled):
                    self._dispatch(batch)
                if batch.workers == 0:
                    break  # every thread is held by a stuck call: nothing can be asked
            remaining = deadline - time.monotonic()
            if remaining <= 0 or batch.finished.wait(min(remaining, self.stall_seconds)):
                break
        with self._lock:
            batch.open = False
            return dict(batch.answers)

    def _dispatch(self, batch: _Batch) -> None:
        """One more thread on the batch: a waiting one, else a new one within the bound.
        Called with the lock held."""
        if self._waiting <= self._queued:
            if self._threads >= self.max_threads:
                return
            self._threads += 1
            self._waiting += 1
            threading.Thread(target=self._serve, name="statfs", daemon=True).start()
        self._queued += 1
        batch.workers += 1
        self._work_queue.put(batch)

    def _serve(self) -> None:
        """A thread's life: counted in _waiting whenever it is not working a batch."""
        while True:
            try:
                batch = self._work_queue.get(timeout=self.idle_seconds)
            except queue.Empty:
                with self._lock:
                    if not self._queued:
                        self._waiting -= 1
                        self._threads -= 1
                        return
                continue
            with self._lock:
                self._waiting -= 1
                self._queued -= 1
            self._work(batch)

    def _work(self, batch: _Batch) -> None:
        path: str | None = None
        answer: StatfsAnswer | None = None
        try:
            while True:
                with self._lock:
                    if path is not None:
                        self._in_call.discard(path)
                        batch.answered += 1
                        if batch.open and answer is not None:
                            batch.answers[path] = answer
                    if not batch.open or not batch.pending:
                        return
                    path = batch.pending.popleft()
                    self._in_call.add(path)
                try:
                    answer = self.statfs(path)
                except OSError as exc:
                    answer = exc
        finally:
            with self._lock:
                batch.workers -= 1
                # waiting again before the batch's end is signalled, so the next cycle
                # finds this thread instead of starting another
                self._waiting += 1
                if batch.workers == 0:
                    batch.finished.set()
