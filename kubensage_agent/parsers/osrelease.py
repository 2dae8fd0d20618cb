"""/etc/os-release (or /usr/lib/os-release): the distribution's name and version."""

from __future__ import annotations

import shlex


def parse_os_release(text: str) -> dict[str, str]:
    """KEY=value lines with shell quoting; comments and malformed lines are skipped."""
    values: dict[str, str] = {}
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, _, value = line.partition("=")
        try:
            parts = shlex.split(value)
        except ValueError:
            continue
        values[key.strip()] = parts[0] if parts else ""
    return values
