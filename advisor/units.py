"""Durations as Prometheus writes them, quantities as Kubernetes writes them, and the
rounding that turns a computed figure into a value a manifest can carry."""

from __future__ import annotations

import math
import re
from decimal import Decimal, InvalidOperation

from kubernetes.utils import parse_quantity

MIB = 1024 * 1024
GIB = 1024 * MIB
_DURATION_UNITS = {"y": 365 * 86400, "w": 7 * 86400, "d": 86400, "h": 3600, "m": 60, "s": 1}
_DURATION = re.compile(r"(?:(\d+)y)?(?:(\d+)w)?(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?")


def parse_duration(text: str) -> int:
    """Seconds in a Prometheus duration such as "14d", "1h30m" or "90s"."""
    match = _DURATION.fullmatch(text.strip())
    if not text.strip() or match is None or not any(match.groups()):
        raise ValueError(f"{text!r} is not a duration like 14d, 12h or 1h30m")
    return sum(
        int(value) * _DURATION_UNITS[unit]
        for value, unit in zip(match.groups(), "ywdhms", strict=True)
        if value
    )


def promql_duration(seconds: int) -> str:
    """A Prometheus duration naming exactly `seconds`, in days at most ("14d", "1d12h")."""
    parts = []
    for unit, size in _DURATION_UNITS.items():
        if unit in "yw":
            continue  # "2w" for 14 days is exact but reads worse than "14d"
        count, seconds = divmod(seconds, size)
        if count:
            parts.append(f"{count}{unit}")
    return "".join(parts) or "0s"


def parse_cpu(text: str) -> float:
    """Cores in a Kubernetes CPU quantity ("250m", "0.5", "2")."""
    return float(_quantity(text, "CPU"))


def parse_memory(text: str) -> int:
    """Bytes in a Kubernetes memory quantity ("256Mi", "1G", "1073741824")."""
    return int(_quantity(text, "memory"))


def _quantity(text: str, what: str) -> Decimal:
    try:
        value = parse_quantity(text)
    except (ValueError, InvalidOperation) as exc:
        raise ValueError(f"{text!r} is not a {what} quantity (e.g. 250m, 512Mi)") from exc
    if value < 0:
        raise ValueError(f"{text!r}: a {what} quantity cannot be negative")
    return Decimal(value)


def round_up_cpu(cores: float) -> float:
    """Up to the next whole millicore, the finest CPU unit a manifest takes."""
    return math.ceil(round(cores * 1000, 6)) / 1000


def round_up_memory(size: float) -> int:
    """Up to the next whole MiB, so patches read 300Mi rather than 314572801."""
    return math.ceil(round(size / MIB, 6)) * MIB


def format_cpu(cores: float) -> str:
    millicores = round(cores * 1000)
    return f"{millicores // 1000}" if millicores % 1000 == 0 else f"{millicores}m"


def format_memory(size: float) -> str:
    whole = int(size)
    if whole % GIB == 0 and whole:
        return f"{whole // GIB}Gi"
    if whole % MIB == 0:
        return f"{whole // MIB}Mi"
    return str(whole)
