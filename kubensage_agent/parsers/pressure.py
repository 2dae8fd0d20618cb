"""/proc/pressure/{cpu,memory,io,irq} and cgroup v2 *.pressure (PSI)."""

from __future__ import annotations

from dataclasses import dataclass

MICROSECONDS = 1e-6


@dataclass(frozen=True)
class PressureLine:
    avg10: float
    avg60: float
    avg300: float
    total_seconds: float


@dataclass(frozen=True)
class PressureStats:
    some: PressureLine | None
    full: PressureLine | None


def parse_pressure(text: str) -> PressureStats:
    """Parse a PSI file: `some avg10=.. avg60=.. avg300=.. total=<µs>` and optionally `full ...`."""
    lines: dict[str, PressureLine] = {}
    for raw in text.splitlines():
        if not raw.strip():
            continue
        kind, _, rest = raw.partition(" ")
        if kind not in ("some", "full"):
            raise ValueError(f"unexpected PSI line kind {kind!r}")
        # read every cycle for every container: the fixed kernel layout is parsed directly
        fields = rest.split()
        try:
            names = [field.partition("=")[0] for field in fields]
            if names != ["avg10", "avg60", "avg300", "total"]:
                raise ValueError(f"unexpected PSI fields {names}")
            values = [field.partition("=")[2] for field in fields]
            lines[kind] = PressureLine(
                avg10=float(values[0]),
                avg60=float(values[1]),
                avg300=float(values[2]),
                total_seconds=int(values[3]) * MICROSECONDS,
            )
        except ValueError as exc:
            raise ValueError(f"malformed PSI line {raw!r}") from exc
    if not lines:
        raise ValueError("empty PSI file")
    return PressureStats(some=lines.get("some"), full=lines.get("full"))
