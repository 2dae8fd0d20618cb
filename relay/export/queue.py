"""What waits to be sent to one receiver: compressed blocks, bounded in bytes and age.

A block is one snappy-compressed `WriteRequest` of one report's samples. Ingest puts
blocks (and waits for room first, so a full queue holds back acknowledgements rather
than growing); sender shards take them, and mark each one done when the receiver took
it or it was dropped. The memory queue is lost with the process; the disk queue
(relay/export/diskqueue.py) is not.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Protocol

DropCounter = Callable[[int], None]


@dataclass(frozen=True, slots=True)
class Block:
    payload: bytes  # snappy-compressed WriteRequest
    samples: int
    node: str
    collected_ms: int  # the report's collection time, the timestamp of every sample in it
    appended_at: float = 0.0  # Unix seconds when queued, for the age bound
    offset: int = -1  # position in its queue, unique while queued


class Turns:
    """Blocks of one node are sent one at a time, in queue order, whichever shards hold them.

    Every series of a node is in each of its blocks, so this keeps samples oldest first
    per series at the receiver while different nodes' blocks go out in parallel. The
    oldest block of a node out of the queue is always free to go, so shards cannot
    wait on each other in a circle. Callers hold the queue's condition.
    """

    def __init__(self, condition: threading.Condition) -> None:
        self._condition = condition
        self._out: dict[str, deque[int]] = {}

    def handed_out(self, block: Block) -> None:
        self._out.setdefault(block.node, deque()).append(block.offset)

    def finished(self, block: Block) -> None:
        out = self._out.get(block.node)
        if out is None or block.offset not in out:
            return
        out.remove(block.offset)
        if not out:
            del self._out[block.node]
        self._condition.notify_all()

    def wait(self, block: Block, timeout: float) -> bool:
        """True once `block` is its node's oldest out, False after `timeout` seconds."""
        deadline = time.monotonic() + timeout
        with self._condition:
            while self._out.get(block.node, deque((block.offset,)))[0] != block.offset:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._condition.wait(remaining)
            return True


class Queue(Protocol):
    max_bytes: int

    def put(self, block: Block) -> None: ...

    def get(self, timeout: float) -> Block | None:
        """The oldest block not handed out yet, or None after `timeout` seconds."""

    def done(self, block: Block) -> None:
        """The block was sent or dropped: forget it."""

    def wait_turn(self, block: Block, timeout: float) -> bool:
        """Wait until no older block of the same node is out (see Turns)."""

    def expired(self, block: Block) -> bool: ...

    @property
    def bytes(self) -> int:
        """Compressed bytes held, handed-out blocks included."""

    @property
    def samples(self) -> int: ...

    def close(self) -> None: ...


class Held:
    """What both queues count and bound: bytes and samples held, and the age limit."""

    def __init__(
        self, max_bytes: int, max_age: float, on_drop: DropCounter, clock: Callable[[], float]
    ) -> None:
        self.max_bytes = max_bytes
        self.max_age = max_age
        self._on_drop = on_drop
        self._clock = clock
        self._bytes = 0
        self._samples = 0
        self._ready = threading.Condition()
        self._turns = Turns(self._ready)

    def expired(self, block: Block) -> bool:
        return self._clock() - block.appended_at > self.max_age

    def wait_turn(self, block: Block, timeout: float) -> bool:
        return self._turns.wait(block, timeout)

    @property
    def bytes(self) -> int:
        return self._bytes

    @property
    def samples(self) -> int:
        return self._samples


class MemoryQueue(Held):
    """Blocks in a deque; a block older than `max_age` seconds is dropped when reached."""

    def __init__(
        self,
        max_bytes: int,
        max_age: float,
        on_drop: DropCounter,
        clock: Callable[[], float] = time.time,
    ) -> None:
        super().__init__(max_bytes, max_age, on_drop, clock)
        self._blocks: deque[Block] = deque()
        self._next_offset = 0

    def put(self, block: Block) -> None:
        with self._ready:
            self._blocks.append(replace(block, offset=self._next_offset))
            self._next_offset += 1
            self._bytes += len(block.payload)
            self._samples += block.samples
            self._ready.notify()

    def get(self, timeout: float) -> Block | None:
        deadline = time.monotonic() + timeout
        with self._ready:
            while True:
                while self._blocks:
                    block = self._blocks.popleft()
                    if not self.expired(block):
                        self._turns.handed_out(block)
                        return block
                    self._forget(block)
                    self._on_drop(block.samples)
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return None
                self._ready.wait(remaining)

    def done(self, block: Block) -> None:
        with self._ready:
            self._forget(block)
            self._turns.finished(block)

    def _forget(self, block: Block) -> None:
        self._bytes -= len(block.payload)
        self._samples -= block.samples

    def close(self) -> None:
        with self._ready:
            self._ready.notify_all()
