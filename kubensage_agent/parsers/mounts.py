"""/proc/<pid>/mounts: the mount table as fstab(5) lines.

`device mountpoint fstype options dump pass`, where the kernel writes a space, tab,
newline or backslash inside a field as a three-digit octal escape (`\\040`).
"""

from __future__ import annotations

import re
from typing import NamedTuple

OCTAL_ESCAPE = re.compile(r"\\([0-7]{3})")


class MountEntry(NamedTuple):
    # as the kernel prints it (node_exporter's `device` label keeps the escapes too)
    device: str
    # unescaped: a path to statfs
    mountpoint: str
    fstype: str
    options: tuple[str, ...]

    @property
    def read_only(self) -> bool:
        return "ro" in self.options


def unescape(field: str) -> str:
    if "\\" not in field:
        return field
    return OCTAL_ESCAPE.sub(lambda match: chr(int(match.group(1), 8)), field)


def parse_mounts(text: str) -> list[MountEntry]:
    entries = []
    for raw in text.splitlines():
        if not raw.strip():
            continue
        fields = raw.split()
        if len(fields) < 4:
            raise ValueError(f"truncated mounts line {raw!r}")
        device, mountpoint, fstype, options = fields[:4]
        if not mountpoint.startswith("/"):
            raise ValueError(f"mount point is not absolute in mounts line {raw!r}")
        entries.append(
            MountEntry(
                device=device,
                mountpoint=unescape(mountpoint),
                fstype=fstype,
                options=tuple(options.split(",")),
            )
        )
    return entries
