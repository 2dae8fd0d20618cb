"""/proc/pressure/{cpu,memory,io,irq} and cgroup v2 *.pressure (PSI)."""

from __future__ import annotations

import re
from dataclasses import dataclass

MICROSECONDS = 1e-6
# Read for every container every cycle, so one compiled pattern does the whole file.
LINE = re.compile(
    r"^(some|full) avg10=([0-9.]+) avg60=([0-9.]+) avg300=([0-9.]+) total=([0-9]+)[ \t]*$",
    re.MULTILINE,
)


@dataclass(frozen=True, slots=True)
class PressureLine:
    avg10: float
    avg60: float
    avg300: float
    total_seconds: float


@dataclass(frozen=True, slots=True)
class PressureStats:
    some: PressureLine | None
    full: PressureLine | None


def parse_pressure(text: str) -> PressureStats:
    """Parse a PSI file: `some avg10=.. avg60=.. avg300=.. total=<µs>` and optionally `full ...`."""
    lines: dict[str, PressureLine] = {}
    for kind, avg10, avg60, avg300, total in LINE.findall(text):
        lines[kind] = PressureLine(
            float(avg10), float(avg60), float(avg300), int(total) * MICROSECONDS
        )
    expected = sum(1 for raw in text.splitlines() if raw.strip())
    if not lines or len(lines) != expected:
        bad = next((raw for raw in text.splitlines() if raw.strip() and not LINE.match(raw)), "")
        raise ValueError(f"malformed PSI file (line {bad!r})" if bad else "empty PSI file")
    return PressureStats(some=lines.get("some"), full=lines.get("full"))
