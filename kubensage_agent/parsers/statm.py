"""/proc/<pid>/statm: a process's memory in pages."""

from __future__ import annotations


def parse_statm_resident_pages(text: str) -> int:
    """Resident pages. Columns: size resident shared text lib data dt (lib and dt are 0
    since Linux 2.6)."""
    _size, resident, *_rest = text.split()
    return int(resident)
