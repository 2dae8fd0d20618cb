"""Memory interface files of a container cgroup: memory.stat (v1 and v2), v2 memory.events
and v1 memory.oom_control."""

from __future__ import annotations

from dataclasses import dataclass

from kubensage_agent.parsers.cgroup_value import optional_int, parse_flat_keyed

# memory.stat key of each figure: v2, and v1's hierarchical ("total_") keys, which the
# kubelet's cAdvisor and containerd read (a container cgroup's own keys lack descendants).
# v2 has no swap key (memory.swap.current); v1 has one only with swap accounting.
V2_KEYS = ("file", "anon", "file_mapped", "inactive_file", "pgfault", "pgmajfault", "")
V1_KEYS = (
    "total_cache",
    "total_rss",
    "total_mapped_file",
    "total_inactive_file",
    "total_pgfault",
    "total_pgmajfault",
    "total_swap",
)


@dataclass(frozen=True, slots=True)
class MemoryStat:
    cache: int | None
    rss: int | None
    mapped_file: int | None
    inactive_file: int | None
    page_faults: int | None
    major_page_faults: int | None
    swap: int | None


@dataclass(frozen=True, slots=True)
class MemoryEvents:
    """v2 memory.events: times over memory.high, times at memory.max, OOM kills."""

    high: int | None
    max: int | None
    oom_kill: int | None


def parse_memory_stat(text: str) -> MemoryStat:
    values = parse_flat_keyed(text)
    keys = V1_KEYS if "total_cache" in values else V2_KEYS
    return MemoryStat(*(optional_int(values, key) for key in keys))


def parse_memory_events(text: str) -> MemoryEvents:
    """Keys: low high max oom oom_kill (4.13+) oom_group_kill (5.17+) sock_throttled."""
    values = parse_flat_keyed(text)
    return MemoryEvents(
        high=optional_int(values, "high"),
        max=optional_int(values, "max"),
        oom_kill=optional_int(values, "oom_kill"),
    )


def parse_oom_control(text: str) -> int | None:
    """OOM kills from v1 memory.oom_control (keys oom_kill_disable under_oom oom_kill;
    oom_kill only since 4.13, None before)."""
    return optional_int(parse_flat_keyed(text), "oom_kill")
