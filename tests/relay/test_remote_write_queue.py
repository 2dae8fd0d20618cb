"""Remote-write queues and the per-node write order, on real files.

A queue reopened without `close()` is what a SIGKILLed relay leaves behind (every
record is written before `put` returns); the relay-level SIGKILL test is in
tests/integration/test_remote_write.py.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from relay.export.diskqueue import DiskQueue
from relay.export.order import Verdict, WriteOrder
from relay.export.queue import Block, MemoryQueue, Queue

NOW = 1_760_000_000.0


class Counts:
    def __init__(self) -> None:
        self.dropped = 0
        self.corrupt = 0
        self.recovered: list[tuple[str, int]] = []
        self.deletes = 0

    def drop(self, samples: int) -> None:
        self.dropped += samples


def block(index: int, node: str = "node-a", size: int = 100) -> Block:
    payload = bytes([index % 256]) * size
    return Block(payload, samples=10 + index, node=node, collected_ms=1000 * index, appended_at=NOW)


def disk(path: Path, counts: Counts, max_bytes: int = 1 << 30, max_age: float = 60.0) -> DiskQueue:
    return DiskQueue(
        path,
        max_bytes,
        max_age,
        counts.drop,
        on_corrupt=lambda: setattr(counts, "corrupt", counts.corrupt + 1),
        on_recovered=lambda node, ms: counts.recovered.append((node, ms)),
        before_delete=lambda: setattr(counts, "deletes", counts.deletes + 1),
        clock=lambda: NOW,
    )


def drain(queue: Queue, done: bool = True) -> list[Block]:
    out = []
    while (got := queue.get(0)) is not None:
        out.append(got)
        if done:
            queue.done(got)
    return out


def test_disk_queue_hands_out_in_order_and_is_empty_after_done(tmp_path: Path) -> None:
    counts = Counts()
    queue = disk(tmp_path, counts)
    for i in range(5):
        queue.put(block(i))
    assert queue.samples == sum(10 + i for i in range(5))
    got = drain(queue)
    assert [(b.payload, b.samples, b.node, b.collected_ms) for b in got] == [
        (b.payload, b.samples, b.node, b.collected_ms) for b in map(block, range(5))
    ]
    assert (queue.samples, queue.bytes) == (0, 0)
    queue.close()
    again = disk(tmp_path, Counts())
    assert again.get(0) is None and again.samples == 0


def test_killed_with_blocks_in_flight_resends_from_the_oldest_not_done(tmp_path: Path) -> None:
    queue = disk(tmp_path, Counts())
    for i in range(4):
        queue.put(block(i))
    first, second = queue.get(0), queue.get(0)
    assert first is not None and second is not None
    queue.done(second)  # the first is still being sent when the process dies
    counts = Counts()
    restarted = disk(tmp_path, counts)  # no close(): what SIGKILL leaves
    assert [b.collected_ms for b in drain(restarted)] == [0, 1000, 2000, 3000]
    assert counts.recovered == [("node-a", 1000 * i) for i in range(4)]
    assert counts.corrupt == 0


def test_everything_done_before_a_kill_is_not_sent_again(tmp_path: Path) -> None:
    queue = disk(tmp_path, Counts())
    for i in range(3):
        queue.put(block(i))
    drain(queue)
    queue.put(block(3))
    restarted = disk(tmp_path, Counts())
    assert [b.collected_ms for b in drain(restarted)] == [3000]


def test_a_torn_last_record_is_cut_and_appending_goes_on(tmp_path: Path) -> None:
    queue = disk(tmp_path, Counts())
    for i in range(3):
        queue.put(block(i))
    (segment,) = tmp_path.glob("*.seg")
    with segment.open("ab") as file:
        file.write(b"\x50\x00\x00\x00partial")
    restarted = disk(tmp_path, Counts())
    restarted.put(block(7))
    assert [b.collected_ms for b in drain(restarted)] == [0, 1000, 2000, 7000]


def test_a_damaged_record_is_skipped_and_counted(tmp_path: Path) -> None:
    queue = disk(tmp_path, Counts())
    for i in range(3):
        queue.put(block(i))
    queue.close()
    (segment,) = tmp_path.glob("*.seg")
    data = bytearray(segment.read_bytes())
    record = len(data) // 3
    data[record + record // 2] ^= 0xFF  # a flipped byte in the second record's payload
    segment.write_bytes(bytes(data))
    counts = Counts()
    restarted = disk(tmp_path, counts)
    assert [b.collected_ms for b in drain(restarted)] == [0, 2000]
    assert counts.corrupt == 1
    assert (restarted.samples, restarted.bytes) == (0, 0)


def test_segments_are_deleted_once_sent_after_saving_the_order(tmp_path: Path) -> None:
    counts = Counts()
    queue = disk(tmp_path, counts, max_bytes=16 * 1024 * 1024)  # 1 MiB segments
    for i in range(30):
        queue.put(block(i, size=100_000))
    assert len(list(tmp_path.glob("*.seg"))) >= 3
    drain(queue)
    assert len(list(tmp_path.glob("*.seg"))) == 1  # the one being appended to
    assert counts.deletes >= 2
    assert (queue.samples, queue.bytes) == (0, 0)


def test_blocks_older_than_the_max_age_are_dropped_and_counted(tmp_path: Path) -> None:
    counts = Counts()
    queue = disk(tmp_path, counts, max_age=60.0)
    queue.put(Block(b"old", 5, "node-a", 1, appended_at=NOW - 61))
    queue.put(Block(b"new", 7, "node-a", 2, appended_at=NOW - 59))
    assert [b.payload for b in drain(queue)] == [b"new"]
    assert counts.dropped == 5
    memory_counts = Counts()
    memory = MemoryQueue(1 << 20, 60.0, memory_counts.drop, clock=lambda: NOW)
    memory.put(Block(b"old", 5, "node-a", 1, appended_at=NOW - 61))
    memory.put(Block(b"new", 7, "node-a", 2, appended_at=NOW - 59))
    assert [b.payload for b in drain(memory)] == [b"new"]
    assert memory_counts.dropped == 5 and memory.bytes == 0


@pytest.mark.parametrize("kind", ["memory", "disk"])
def test_a_node_waits_for_its_older_block_while_other_nodes_go(kind: str, tmp_path: Path) -> None:
    queue: Queue = (
        disk(tmp_path, Counts())
        if kind == "disk"
        else MemoryQueue(1 << 20, 60.0, lambda n: None, clock=lambda: NOW)
    )
    for b in (block(1, "a"), block(2, "a"), block(3, "b")):
        queue.put(b)
    a1, a2, b3 = drain(queue, done=False)
    assert queue.wait_turn(a1, 0) and queue.wait_turn(b3, 0)
    assert not queue.wait_turn(a2, 0.05)
    queue.done(a1)
    assert queue.wait_turn(a2, 0)


def test_write_order_verdicts_and_persistence(tmp_path: Path) -> None:
    path = tmp_path / "order.json"
    order = WriteOrder(path, clock=lambda: NOW)
    ms = int(NOW * 1000)
    assert order.verdict("a", ms) is Verdict.WRITE
    order.written("a", ms)
    assert order.verdict("a", ms) is Verdict.DUPLICATE
    assert order.verdict("a", ms - 1) is Verdict.OUT_OF_ORDER
    assert order.verdict("a", ms + 1) is Verdict.WRITE
    assert order.verdict("b", 1) is Verdict.WRITE
    order.written("old", ms - 8 * 86_400_000)  # silent for more than a week: forgotten on save
    order.save()
    again = WriteOrder(path)
    assert again.verdict("a", ms) is Verdict.DUPLICATE
    assert again.verdict("old", 1) is Verdict.WRITE
    path.write_text("{not json")
    assert len(WriteOrder(path)) == 0
    assert not list(tmp_path.glob("*.tmp"))


def test_queue_files_are_private(tmp_path: Path) -> None:
    queue = disk(tmp_path, Counts())
    queue.put(block(1))
    queue.close()
    for path in tmp_path.iterdir():
        assert os.stat(path).st_mode & 0o077 == 0, path
