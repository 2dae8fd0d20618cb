"""Rules on node checks that both sides apply: what a check may be called (the agent runs
only files named so; the relay exposes only results named so, the name being a label
value), the interval range (from a manifest or from the relay's overrides), and the
names of the states (runs_total keys, label values)."""

from __future__ import annotations

import re

from kubensage_api.telemetry import telemetry_pb2 as tm

MANIFEST_SUFFIX = ".yaml"
CHECK_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,62}")
MIN_INTERVAL_SECONDS = 1.0
MAX_INTERVAL_SECONDS = 86_400.0


def is_check_name(name: str) -> bool:
    return CHECK_NAME.fullmatch(name) is not None and not name.endswith(MANIFEST_SUFFIX)


def interval_allowed(seconds: float) -> bool:
    return MIN_INTERVAL_SECONDS <= seconds <= MAX_INTERVAL_SECONDS


STATE_NAMES: dict[int, str] = {
    tm.CHECK_STATE_OK: "ok",
    tm.CHECK_STATE_WARNING: "warning",
    tm.CHECK_STATE_CRITICAL: "critical",
    tm.CHECK_STATE_UNKNOWN: "unknown",
}


def state_name(state: int) -> str:
    """A state's name; anything not a known state (unset, from a newer agent) is unknown."""
    return STATE_NAMES.get(state, "unknown")
