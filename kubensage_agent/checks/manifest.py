"""A check's settings: `<check>.yaml` beside the executable `<check>`, else the defaults.

    interval: 60          # seconds between runs
    timeout: 10           # seconds before the check and its process group are killed
    args: ["--warn", "80"]
    user: nobody          # the account it runs as; `root` only when it must
    enabled: true

Parsing is pure (text in, spec out) so every rule is tested on strings.
"""

from __future__ import annotations

import math
import pwd
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from kubensage_common.checkrules import (
    MAX_INTERVAL_SECONDS,
    MIN_INTERVAL_SECONDS,
    interval_allowed,
)

MAX_TIMEOUT_SECONDS = 3_600.0
MAX_ARGS = 64
MAX_ARG_CHARS = 4096
MANIFEST_KEYS = frozenset({"interval", "timeout", "args", "user", "enabled"})
DEFAULT_USER = "nobody"


class ManifestError(ValueError):
    """A manifest that cannot be used; the check is refused with this message."""


@dataclass(frozen=True)
class Account:
    name: str
    uid: int
    gid: int

    @property
    def is_root(self) -> bool:
        return self.uid == 0


@dataclass(frozen=True)
class CheckDefaults:
    interval_seconds: float = 60.0
    timeout_seconds: float = 10.0
    user: str = DEFAULT_USER


@dataclass(frozen=True)
class CheckSpec:
    name: str
    path: Path
    interval_seconds: float
    timeout_seconds: float
    args: tuple[str, ...]
    account: Account
    enabled: bool = True

    def with_override(self, enabled: bool | None, interval_seconds: float | None) -> CheckSpec:
        """The same check with what the relay may change: never its code or command line."""
        return replace(
            self,
            enabled=self.enabled if enabled is None else enabled,
            interval_seconds=(
                self.interval_seconds if interval_seconds is None else interval_seconds
            ),
        )


def resolve_account(user: str) -> Account:
    try:
        entry = pwd.getpwnam(user)
    except KeyError:
        raise ManifestError(f"user {user!r} does not exist on this node") from None
    return Account(user, entry.pw_uid, entry.pw_gid)


def valid_interval(value: Any) -> float:
    """An interval in seconds within the allowed range (from a manifest or the relay)."""
    seconds = _seconds(value, "interval")
    if not interval_allowed(seconds):
        raise ManifestError(
            f"interval {seconds:g}s is outside {MIN_INTERVAL_SECONDS:g}..{MAX_INTERVAL_SECONDS:g}s"
        )
    return seconds


def _seconds(value: Any, key: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ManifestError(f"{key} must be a number of seconds, not {value!r}")
    seconds = float(value)
    if not math.isfinite(seconds) or seconds <= 0:
        raise ManifestError(f"{key} must be a positive number of seconds, not {value!r}")
    return seconds


def _args(value: Any) -> tuple[str, ...]:
    if not isinstance(value, list) or len(value) > MAX_ARGS:
        raise ManifestError(f"args must be a list of at most {MAX_ARGS} strings")
    args = []
    for item in value:
        if isinstance(item, bool) or not isinstance(item, str | int | float):
            raise ManifestError(f"args must hold strings or numbers, not {item!r}")
        text = str(item)
        if "\0" in text or len(text) > MAX_ARG_CHARS:
            raise ManifestError(f"an argument holds NUL or is longer than {MAX_ARG_CHARS} chars")
        args.append(text)
    return tuple(args)


def parse_manifest(text: str | None, name: str, path: Path, defaults: CheckDefaults) -> CheckSpec:
    """The spec of check `name` at `path` from its manifest text (None: no manifest)."""
    data: Any = {}
    if text is not None:
        import yaml  # noqa: PLC0415 - YAML loads only on a node with a manifest to read

        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise ManifestError(f"manifest is not valid YAML: {exc}") from None
        data = {} if data is None else data
    if not isinstance(data, dict):
        raise ManifestError("manifest must be a mapping of setting: value")
    unknown = sorted(str(key) for key in set(data) - MANIFEST_KEYS)
    if unknown:
        raise ManifestError(f"unknown manifest keys: {', '.join(unknown)}")
    enabled = data.get("enabled", True)
    if not isinstance(enabled, bool):
        raise ManifestError(f"enabled must be true or false, not {enabled!r}")
    timeout = _seconds(data.get("timeout", defaults.timeout_seconds), "timeout")
    if timeout > MAX_TIMEOUT_SECONDS:
        raise ManifestError(f"timeout {timeout:g}s is over {MAX_TIMEOUT_SECONDS:g}s")
    user = data.get("user", defaults.user)
    if not isinstance(user, str) or not user:
        raise ManifestError(f"user must be an account name, not {user!r}")
    return CheckSpec(
        name=name,
        path=path,
        interval_seconds=valid_interval(data.get("interval", defaults.interval_seconds)),
        timeout_seconds=timeout,
        args=_args(data.get("args", [])),
        account=resolve_account(user),
        enabled=enabled,
    )
