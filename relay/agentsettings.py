"""What the relay pushes to every agent when its stream starts: the collection interval and
overrides of the node checks (on/off, interval; never code or a command line).

    --check-override ntp:enabled=false
    --check-override disk:interval=300,enabled=true

The overrides go out as the whole list (`checks_replace`), so a relay configured with none
clears what an earlier configuration had set.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

from kubensage_api.telemetry import telemetry_pb2 as tm
from kubensage_common.checkrules import (
    MAX_INTERVAL_SECONDS,
    MIN_INTERVAL_SECONDS,
    interval_allowed,
    is_check_name,
)

BOOLEANS = {"true": True, "false": False}


def parse_check_override(text: str) -> tm.CheckOverride:
    """`NAME:enabled=true|false,interval=SECONDS` (either key, or both); ValueError if bad."""
    name, colon, settings = text.partition(":")
    if not is_check_name(name) or not colon or not settings:
        raise ValueError(
            f"{text!r}: expected NAME:enabled=true|false,interval=SECONDS with a check name"
        )
    override = tm.CheckOverride(name=name)
    for pair in settings.split(","):
        key, equals, value = (part.strip() for part in pair.partition("="))
        if key == "enabled" and equals and value.lower() in BOOLEANS:
            override.enabled = BOOLEANS[value.lower()]
        elif key == "interval" and equals:
            try:
                seconds = float(value)
            except ValueError:
                seconds = math.nan
            if not interval_allowed(seconds):
                raise ValueError(
                    f"{text!r}: interval must be {MIN_INTERVAL_SECONDS:g}.."
                    f"{MAX_INTERVAL_SECONDS:g} seconds"
                )
            override.interval_seconds = seconds
        else:
            raise ValueError(f"{text!r}: unknown setting {pair!r} (enabled=, interval=)")
    return override


def agent_settings(interval_seconds: float, overrides: Iterable[tm.CheckOverride]) -> tm.Settings:
    settings = tm.Settings(interval_seconds=max(0.0, interval_seconds), checks_replace=True)
    by_name: dict[str, tm.CheckOverride] = {}
    for override in overrides:
        merged = by_name.setdefault(override.name, tm.CheckOverride(name=override.name))
        merged.MergeFrom(override)  # a later flag for the same check wins field by field
    settings.checks.extend(by_name[name] for name in sorted(by_name))
    return settings
