"""/proc/loadavg: the 1, 5 and 15 minute load averages."""

from __future__ import annotations


def parse_loadavg(text: str) -> tuple[float, float, float]:
    fields = text.split()
    if len(fields) < 3:
        raise ValueError(f"truncated loadavg {text!r}")
    try:
        return float(fields[0]), float(fields[1]), float(fields[2])
    except ValueError as exc:
        raise ValueError(f"malformed loadavg {text!r}") from exc
