"""/proc/vmstat: the kernel's virtual memory counters, one `name value` pair a line.

The file has ~200 counters and the agent reads a few, so only the asked-for lines are
picked out (one regex pass costs less than splitting every line).
"""

from __future__ import annotations

import functools
import re


@functools.cache
def _lines_of(names: tuple[str, ...]) -> re.Pattern[str]:
    return re.compile(rf"^({'|'.join(map(re.escape, names))}) (.*)$", re.MULTILINE)


def parse_vmstat(text: str, names: tuple[str, ...]) -> dict[str, int]:
    """The named counters the file has; a kernel without one (oom_kill before 4.13)
    leaves it out of the answer."""
    if not text.strip():
        raise ValueError("empty vmstat file")
    counters: dict[str, int] = {}
    for name, value in _lines_of(names).findall(text):
        try:
            counters[name] = int(value)
        except ValueError as exc:
            raise ValueError(f"malformed vmstat line {name} {value!r}") from exc
    return counters
