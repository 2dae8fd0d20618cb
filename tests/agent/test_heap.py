"""The agent hands freed heap pages back to the kernel after every cycle."""

from __future__ import annotations

import subprocess
import sys

import pytest

from kubensage_agent.push.runner import AgentRunner, RunConfig
from kubensage_agent.report import ReportBuilder

MIB = 1024 * 1024

# 64 MiB in 64 KiB blocks (below glibc's mmap threshold, so on the heap), all freed but
# the last: one large free chunk that is not at the heap's top, which free() keeps.
FRAGMENTED_HEAP = """
import ctypes, re
from kubensage_agent.heap import release_free_memory

libc = ctypes.CDLL(None)
libc.malloc.restype, libc.malloc.argtypes = ctypes.c_void_p, (ctypes.c_size_t,)
libc.free.argtypes = (ctypes.c_void_p,)
blocks = [libc.malloc(64 * 1024) for _ in range(1024)]
for block in blocks:
    ctypes.memset(block, 1, 64 * 1024)
for block in blocks[:-1]:
    libc.free(block)

def anonymous_kib():
    return int(re.search(r"RssAnon:\\s+(\\d+)", open("/proc/self/status").read())[1])

before = anonymous_kib()
released = release_free_memory()
print(before, anonymous_kib(), released)
"""


def test_freed_heap_pages_leave_the_resident_set() -> None:
    out = subprocess.run(
        [sys.executable, "-c", FRAGMENTED_HEAP],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout.split()
    before_kib, after_kib, released = int(out[0]), int(out[1]), out[2]
    assert released == "True"
    assert (before_kib - after_kib) * 1024 > 48 * MIB, (before_kib, after_kib)


def test_every_cycle_ends_by_releasing_free_memory(
    host_builder: ReportBuilder, monkeypatch: pytest.MonkeyPatch
) -> None:
    runner = AgentRunner(host_builder, RunConfig(relay_address="127.0.0.1:9"))
    queued_when_released: list[int] = []
    monkeypatch.setattr(
        "kubensage_agent.push.runner.release_free_memory",
        lambda: queued_when_released.append(len(runner.queue)) or True,
    )
    runner._cycle()
    runner._cycle()
    assert queued_when_released == [1, 2]


def test_a_cycle_dropped_as_oversize_still_releases_free_memory(
    host_builder: ReportBuilder, monkeypatch: pytest.MonkeyPatch
) -> None:
    runner = AgentRunner(host_builder, RunConfig(relay_address="127.0.0.1:9", max_message_bytes=64))
    released: list[int] = []
    monkeypatch.setattr(
        "kubensage_agent.push.runner.release_free_memory",
        lambda: released.append(runner.oversize_dropped) or True,
    )
    runner._cycle()
    assert len(runner.queue) == 0
    assert released == [1]
