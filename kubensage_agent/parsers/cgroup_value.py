"""The two generic cgroup interface file formats (kernel cgroup-v2.rst, "Interface Files"):
single values ("4096", or "max" for no limit) and flat-keyed files ("key value" per line).

These run for every container every cycle, so they only split strings; numbers are
converted by the caller for the keys it uses.
"""

from __future__ import annotations


def parse_single_value(text: str) -> int | None:
    """A single-value file: an integer, or None for "max" (no limit)."""
    value = text.strip()
    if value == "max":
        return None
    if not value:
        raise ValueError("empty cgroup value file")
    return int(value)


def parse_flat_keyed(text: str) -> dict[str, str]:
    """A flat-keyed file as key -> raw value (cpu.stat, memory.stat, memory.events, ...)."""
    tokens = text.split()
    if not tokens or len(tokens) % 2:
        raise ValueError(f"malformed flat-keyed cgroup file ({len(tokens)} fields)")
    pairs = iter(tokens)
    return dict(zip(pairs, pairs, strict=True))


def optional_int(values: dict[str, str], key: str) -> int | None:
    """`key` as an integer, or None when this kernel does not report it."""
    raw = values.get(key)
    return None if raw is None else int(raw)
