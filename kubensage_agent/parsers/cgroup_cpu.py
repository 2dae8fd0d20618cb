"""CPU interface files of a container cgroup: cpu.stat (v1 and v2) and v1 cpuacct.stat."""

from __future__ import annotations

from dataclasses import dataclass

from kubensage_agent.parsers.cgroup_value import optional_int, parse_flat_keyed

MICROS = 1e-6
NANOS = 1e-9


@dataclass(frozen=True, slots=True)
class CpuStat:
    """cpu.stat. v1 (cpu controller): only the CFS figures. v2: usage, user and system
    always, the CFS figures when the cpu controller is enabled for the cgroup."""

    usage_ns: int | None
    user_seconds: float | None
    system_seconds: float | None
    periods: int | None
    throttled_periods: int | None
    throttled_seconds: float | None


@dataclass(frozen=True, slots=True)
class UserSystem:
    user_seconds: float
    system_seconds: float


def _scaled(value: int | None, factor: float) -> float | None:
    return None if value is None else value * factor


def parse_cpu_stat(text: str) -> CpuStat:
    """v1 keys: nr_periods nr_throttled throttled_time (ns); v2 keys: usage_usec user_usec
    system_usec nr_periods nr_throttled throttled_usec (and nr_bursts, burst_usec)."""
    values = parse_flat_keyed(text)
    usage_usec = optional_int(values, "usage_usec")
    throttled_usec = optional_int(values, "throttled_usec")
    return CpuStat(
        usage_ns=None if usage_usec is None else usage_usec * 1000,
        user_seconds=_scaled(optional_int(values, "user_usec"), MICROS),
        system_seconds=_scaled(optional_int(values, "system_usec"), MICROS),
        periods=optional_int(values, "nr_periods"),
        throttled_periods=optional_int(values, "nr_throttled"),
        throttled_seconds=(
            throttled_usec * MICROS
            if throttled_usec is not None
            else _scaled(optional_int(values, "throttled_time"), NANOS)
        ),
    )


def parse_cpuacct_stat(text: str, ticks_per_second: int) -> UserSystem:
    """v1 cpuacct.stat: `user <ticks>` and `system <ticks>` in USER_HZ."""
    values = parse_flat_keyed(text)
    if "user" not in values or "system" not in values:
        raise ValueError("cpuacct.stat without its user or system line")
    return UserSystem(
        user_seconds=int(values["user"]) / ticks_per_second,
        system_seconds=int(values["system"]) / ticks_per_second,
    )
