"""/sys/dev/block/MAJ:MIN/uevent: KEY=value lines; DEVNAME is the kernel's device name."""

from __future__ import annotations


def parse_uevent(text: str) -> dict[str, str]:
    values = {}
    for raw in text.splitlines():
        if not raw:
            continue
        key, equals, value = raw.partition("=")
        if not equals or not key:
            raise ValueError(f"malformed uevent line {raw!r}")
        values[key] = value
    return values
