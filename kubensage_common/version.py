"""Version, commit and build date; `make build` bakes all three into _build_info.py."""

from __future__ import annotations

from importlib import metadata


def _package_version() -> str:
    try:
        return metadata.version("kubensage")
    except metadata.PackageNotFoundError:
        return "0.0.0+unknown"


try:
    from kubensage_common._build_info import (  # type: ignore[import-not-found,unused-ignore]
        BUILD_DATE,
        COMMIT,
        VERSION,
    )
except ImportError:
    VERSION: str = _package_version()  # type: ignore[no-redef]
    COMMIT = "unknown"
    BUILD_DATE = "unknown"


def version_string(program: str) -> str:
    return f"{program} {VERSION} (commit {COMMIT}, built {BUILD_DATE})"
