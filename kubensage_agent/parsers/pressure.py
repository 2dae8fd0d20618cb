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
        fields = dict(part.split("=", 1) for part in rest.split() if "=" in part)
        try:
            lines[kind] = PressureLine(
                avg10=float(fields["avg10"]),
                avg60=float(fields["avg60"]),
                avg300=float(fields["avg300"]),
                total_seconds=int(fields["total"]) * MICROSECONDS,
            )
        except (KeyError, ValueError) as exc:
            raise ValueError(f"malformed PSI line {raw!r}") from exc
    if not lines:
        raise ValueError("empty PSI file")
    return PressureStats(some=lines.get("some"), full=lines.get("full"))
