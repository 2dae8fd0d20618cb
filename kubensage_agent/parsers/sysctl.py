"""A /proc/sys file holding one integer (net/netfilter/nf_conntrack_count, _max, ...)."""

from __future__ import annotations


def parse_sysctl_integer(text: str) -> int:
    fields = text.split()
    if len(fields) != 1:
        raise ValueError(f"expected one integer, got {text!r}")
    try:
        return int(fields[0])
    except ValueError as exc:
        raise ValueError(f"non-numeric sysctl value {text!r}") from exc
