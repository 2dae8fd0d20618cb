"""Version, commit and build date; `make build` bakes the latter two into _build_info.py."""

from __future__ import annotations

from importlib import metadata

try:
    from kubensage_common._build_info import BUILD_DATE, COMMIT  # type: ignore[import-not-found]
except ImportError:
    COMMIT = "unknown"
    BUILD_DATE = "unknown"


def _package_version() -> str:
    try:
        return metadata.version("kubensage")
    except metadata.PackageNotFoundError:
        return "0.0.0+unknown"


VERSION: str = _package_version()


def version_string(program: str) -> str:
    return f"{program} {VERSION} (commit {COMMIT}, built {BUILD_DATE})"
