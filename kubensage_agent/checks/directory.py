"""The check directory: which files are checks, whether each may run, and when to re-read it.

A check runs as root's code on every node, so only what root alone could have put there
runs: the directory, the executable and its manifest must be owned by root and writable
by nobody else. The rule is applied when the directory is read and again before every
run, so a script made group-writable later is refused from then on.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Hashable
from dataclasses import dataclass, field
from pathlib import Path

from kubensage_agent.checks.manifest import (
    CheckDefaults,
    CheckSpec,
    ManifestError,
    parse_manifest,
)
from kubensage_common.checkrules import MANIFEST_SUFFIX, is_check_name

MAX_CHECKS = 64
MAX_ENTRIES = 1024  # entries looked at per read: a directory flooded with files costs no more
MAX_MANIFEST_BYTES = 64 * 1024
GROUP_OR_OTHER_WRITE = stat.S_IWGRP | stat.S_IWOTH
ANY_EXECUTE = stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH


@dataclass(frozen=True)
class Refused:
    """A check that may not run, and why; it is reported as UNKNOWN at the default interval."""

    name: str
    path: Path
    reason: str
    interval_seconds: float


@dataclass(frozen=True)
class Scan:
    checks: dict[str, CheckSpec | Refused] = field(default_factory=dict)
    # executables left out, with why (bad name, over the cap), for the log
    ignored: dict[str, str] = field(default_factory=dict)


def untrusted(st: os.stat_result, what: str) -> str | None:
    """Why a file with this status cannot be trusted as root's, or None."""
    if st.st_uid != 0:
        return f"{what} is owned by uid {st.st_uid}, not root"
    if st.st_mode & GROUP_OR_OTHER_WRITE:
        return f"{what} is writable by group or others (mode {stat.S_IMODE(st.st_mode):04o})"
    return None


def _status(path: Path) -> os.stat_result | str:
    try:
        return os.stat(path)
    except FileNotFoundError:
        return f"{path} does not exist"
    except OSError as exc:
        return f"cannot stat {path}: {exc.strerror}"


def directory_refusal(directory: Path) -> str | None:
    st = _status(directory)
    if isinstance(st, str):
        return st
    if not stat.S_ISDIR(st.st_mode):
        return f"{directory} is not a directory"
    return untrusted(st, f"check directory {directory}")


def refusal(path: Path) -> str | None:
    """Why the executable at `path` must not run now, or None when it may."""
    problem = directory_refusal(path.parent)
    if problem is not None:
        return problem
    st = _status(path)
    if isinstance(st, str):
        return st
    if not stat.S_ISREG(st.st_mode):
        return f"{path} is not a regular file"
    if not st.st_mode & ANY_EXECUTE:
        return f"{path} is not executable"
    return untrusted(st, str(path))


def fingerprint(directory: Path) -> Hashable:
    """Changes when a file is added, removed, replaced, edited, chmod-ed or chown-ed."""
    try:
        own = os.stat(directory)
        entries = []
        with os.scandir(directory) as listing:
            for count, entry in enumerate(listing):
                if count >= MAX_ENTRIES:
                    break
                try:
                    st = entry.stat()
                except OSError:
                    continue
                entries.append((entry.name, st.st_ino, st.st_mtime_ns, st.st_ctime_ns))
    except OSError as exc:
        return ("unreadable", exc.errno)
    return (own.st_ino, own.st_mtime_ns, own.st_ctime_ns, tuple(sorted(entries)))


def _manifest_text(path: Path) -> str | None:
    """The manifest beside a check, None when there is none; raises when it is untrusted."""
    st = _status(path)
    if isinstance(st, str):
        if not path.exists() and not path.is_symlink():
            return None
        raise ManifestError(st)
    reason = untrusted(st, str(path))
    if reason is not None:
        raise ManifestError(reason)
    with path.open("rb") as handle:
        raw = handle.read(MAX_MANIFEST_BYTES + 1)
    if len(raw) > MAX_MANIFEST_BYTES:
        raise ManifestError(f"{path} is larger than {MAX_MANIFEST_BYTES} bytes")
    return raw.decode(errors="replace")


def _candidates(directory: Path) -> tuple[list[str], dict[str, str]]:
    """Executable regular files in `directory` (sorted), and those whose name is not allowed."""
    names, ignored = [], {}
    with os.scandir(directory) as listing:
        for count, entry in enumerate(listing):
            if count >= MAX_ENTRIES:
                break
            if entry.name.startswith(".") or entry.name.endswith(MANIFEST_SUFFIX):
                continue
            try:
                st = entry.stat()
            except OSError:
                continue
            if not stat.S_ISREG(st.st_mode) or not st.st_mode & ANY_EXECUTE:
                continue  # READMEs, manifests and folders are not checks
            if is_check_name(entry.name):
                names.append(entry.name)
            else:
                ignored[entry.name] = "name must be 1-63 of [A-Za-z0-9_.-], starting alphanumeric"
    names.sort()
    for name in names[MAX_CHECKS:]:
        ignored[name] = f"more than {MAX_CHECKS} checks"
    return names[:MAX_CHECKS], ignored


def scan(directory: Path, defaults: CheckDefaults) -> Scan:
    """Every check in `directory` with its spec, or the reason it is refused."""
    problem = directory_refusal(directory)
    if problem is not None and not directory.is_dir():
        return Scan()
    try:
        names, ignored = _candidates(directory)
    except OSError:
        return Scan()
    checks: dict[str, CheckSpec | Refused] = {}
    for name in names:
        path = directory / name
        reason = problem or refusal(path)
        if reason is None:
            try:
                text = _manifest_text(directory / (name + MANIFEST_SUFFIX))
                checks[name] = parse_manifest(text, name, path, defaults)
                continue
            except ManifestError as exc:
                reason = f"manifest of {name}: {exc}"
            except OSError as exc:
                reason = f"manifest of {name} unreadable: {exc.strerror}"
        checks[name] = Refused(name, path, reason, defaults.interval_seconds)
    return Scan(checks, ignored)
