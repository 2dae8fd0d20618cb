"""/proc/sys/fs/file-nr: file handles allocated, allocated but unused, and the maximum."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class FileHandles:
    allocated: int
    # always 0 since Linux 2.6: freed handles are returned to the kernel at once
    unused: int
    maximum: int


def parse_file_nr(text: str) -> FileHandles:
    fields = text.split()
    if len(fields) != 3:
        raise ValueError(f"file-nr holds three numbers, got {text!r}")
    try:
        allocated, unused, maximum = (int(field) for field in fields)
    except ValueError as exc:
        raise ValueError(f"non-numeric file-nr {text!r}") from exc
    return FileHandles(allocated=allocated, unused=unused, maximum=maximum)
