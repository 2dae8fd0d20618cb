"""Identity, sequence numbers and the spool across restarts, crashes and damaged files."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from kubensage_agent.push.queue import ReportQueue
from kubensage_agent.state.identity import SequenceAllocator, load_or_create_agent_id
from kubensage_agent.state.spool import HEADER, Spool, encode_record
from kubensage_api.telemetry import telemetry_pb2 as tm
from tests.support.reports import report

MIB = 1024 * 1024


def written(spool: Spool, one: tm.Metrics) -> tuple[tm.Metrics, int]:
    """The report with the size of the record just written for it, for `Spool.record`."""
    return one, spool.write_file(one)


def test_agent_id_is_created_once_and_reused(tmp_path: Path) -> None:
    path = tmp_path / "state" / "agent-id"
    first = load_or_create_agent_id(path)
    assert load_or_create_agent_id(path) == first
    path.write_text("pre-provisioned-node-7\n")
    assert load_or_create_agent_id(path) == "pre-provisioned-node-7"


def test_sequences_keep_increasing_across_restarts_and_crashes(tmp_path: Path) -> None:
    path = tmp_path / "sequence"
    first_run = SequenceAllocator(path, block=10)
    used = [first_run.next() for _ in range(15)]
    assert used == list(range(1, 16))
    # a crash now: the next run must not reuse 1..15, whatever it skips
    second_run = SequenceAllocator(path, block=10)
    assert second_run.next() > 15
    assert SequenceAllocator(None, floor=41).next() == 42


def test_damaged_sequence_file_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "sequence"
    path.write_text("not-a-number")
    with pytest.raises(ValueError, match="damaged"):
        SequenceAllocator(path)


def test_spooled_reports_survive_a_restart_oldest_first(tmp_path: Path) -> None:
    queue = ReportQueue(100, Spool(tmp_path, 16 * MIB, 3600))
    for sequence in range(1, 6):
        queue.put(report(sequence=sequence))
    queue.ack(2)
    restarted = ReportQueue(100, Spool(tmp_path, 16 * MIB, 3600))
    assert len(restarted) == 3
    assert restarted.after(0).sequence == 3  # type: ignore[union-attr]
    assert restarted.highest_sequence == 5
    assert restarted.after(3).node.name == "node-a"  # type: ignore[union-attr]


@pytest.mark.parametrize(
    "damage",
    [
        lambda data: data[: len(data) // 2],  # torn write
        lambda data: data[:-1] + bytes([data[-1] ^ 0xFF]),  # flipped bits
        lambda data: b"XXXX" + data[4:],  # not ours
        lambda data: data[: HEADER.size - 1],  # shorter than a header
        lambda data: encode_record(b"\xff\xff\xff garbage protobuf"),  # framed but not a report
    ],
)
def test_damaged_record_is_skipped_and_counted(tmp_path: Path, damage) -> None:  # type: ignore[no-untyped-def]
    spool = Spool(tmp_path, 16 * MIB, 3600)
    for sequence in (1, 2, 3):
        spool.record(*written(spool, report(sequence=sequence)))
    victim = tmp_path / f"{2:020d}.report"
    victim.write_bytes(damage(victim.read_bytes()))
    reloaded = Spool(tmp_path, 16 * MIB, 3600)
    assert [r.sequence for r in reloaded.load()] == [1, 3]
    assert reloaded.corrupt_total == 1
    assert not victim.exists()


def test_leftover_temp_file_from_a_crash_is_ignored(tmp_path: Path) -> None:
    spool = Spool(tmp_path, 16 * MIB, 3600)
    spool.record(*written(spool, report(sequence=1)))
    (tmp_path / f".{4:020d}.report.tmp").write_bytes(b"half written")
    reloaded = Spool(tmp_path, 16 * MIB, 3600)
    assert [r.sequence for r in reloaded.load()] == [1]
    assert reloaded.corrupt_total == 0
    assert not list(tmp_path.glob(".*.tmp"))


def test_byte_cap_evicts_oldest_and_counts_drops(tmp_path: Path) -> None:
    one = len(encode_record(report(sequence=1).SerializeToString()))
    queue = ReportQueue(100, Spool(tmp_path, max_bytes=3 * one + one // 2, max_age_seconds=3600))
    for sequence in range(1, 7):
        queue.put(report(sequence=sequence))
    assert queue.after(0).sequence == 4  # type: ignore[union-attr]
    assert queue.dropped_total == 3
    assert len(list(tmp_path.glob("*.report"))) == 3


def test_a_report_dropped_for_the_queue_size_is_not_also_evicted_by_the_byte_cap(
    tmp_path: Path,
) -> None:
    """The queue's own drop releases the record's bytes before the spool checks its cap:
    the spool holds exactly what the queue holds, and no drop is counted twice."""
    one = len(encode_record(report(sequence=1).SerializeToString()))
    spool = Spool(tmp_path, max_bytes=2 * one + one // 2, max_age_seconds=3600)
    queue = ReportQueue(2, spool)
    for sequence in range(1, 5):
        queue.put(report(sequence=sequence))
    assert [queue.after(0).sequence, queue.after(3).sequence] == [3, 4]  # type: ignore[union-attr]
    assert queue.dropped_total == 2
    assert spool.evicted_total == 0
    assert len(list(tmp_path.glob("*.report"))) == 2


def test_age_cap_evicts_reports_older_than_allowed(tmp_path: Path) -> None:
    spool = Spool(tmp_path, 16 * MIB, max_age_seconds=60)
    old = report(sequence=1)
    old.collected_at_unix_nanos = time.time_ns() - 120 * 10**9
    spool.record(*written(spool, old))
    spool.record(*written(spool, report(sequence=2)))
    queue = ReportQueue(100, Spool(tmp_path, 16 * MIB, max_age_seconds=60))
    assert queue.after(0).sequence == 2  # type: ignore[union-attr]
    assert queue.dropped_total == 1


def test_record_damaged_while_queued_is_skipped_when_sending(tmp_path: Path) -> None:
    queue = ReportQueue(100, Spool(tmp_path, 16 * MIB, 3600))
    for sequence in (1, 2):
        queue.put(report(sequence=sequence))
    (tmp_path / f"{1:020d}.report").write_bytes(b"junk")
    assert queue.after(0).sequence == 2  # type: ignore[union-attr]
    assert queue.spool is not None and queue.spool.corrupt_total == 1
