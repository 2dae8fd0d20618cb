"""/proc/uptime: seconds since boot."""

from __future__ import annotations


def parse_uptime(text: str) -> float:
    fields = text.split()
    if not fields:
        raise ValueError("empty uptime file")
    try:
        return float(fields[0])
    except ValueError as exc:
        raise ValueError(f"malformed uptime {text!r}") from exc
