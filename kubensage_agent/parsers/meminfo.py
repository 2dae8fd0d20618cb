"""/proc/meminfo: every field, kB values converted to bytes.

Lines are `Name:   value kB` or, for the HugePages_* counts, `Name:   value` (pages).
"""

from __future__ import annotations

KIB = 1024


def parse_meminfo(text: str) -> dict[str, int]:
    """Field name (as the kernel spells it, e.g. "Active(anon)") -> bytes, or a count
    for the fields the kernel prints without a unit."""
    fields: dict[str, int] = {}
    for raw in text.splitlines():
        parts = raw.split()
        if not parts:
            # some 3.10 kernels print an empty line now and then
            continue
        if len(parts) not in (2, 3) or not parts[0].endswith(":"):
            raise ValueError(f"malformed meminfo line {raw!r}")
        name, value = parts[0][:-1], parts[1]
        try:
            number = int(value)
        except ValueError as exc:
            raise ValueError(f"non-numeric meminfo line {raw!r}") from exc
        if len(parts) == 3:
            if parts[2] != "kB":
                raise ValueError(f"unknown unit in meminfo line {raw!r}")
            number *= KIB
        fields[name] = number
    if "MemTotal" not in fields:
        raise ValueError("not a meminfo file: no MemTotal")
    return fields
