"""Version, commit and build date; `make build` bakes all three into _build_info.py."""

from __future__ import annotations

import importlib
from importlib import metadata


def _package_version() -> str:
    try:
        return metadata.version("kubensage")
    except metadata.PackageNotFoundError:
        return "0.0.0+unknown"


def _build_info() -> tuple[str, str, str]:
    """(version, commit, build date): baked by the build, else from the installed package."""
    try:
        baked = importlib.import_module("kubensage_common._build_info")
    except ImportError:
        return _package_version(), "unknown", "unknown"
    return str(baked.VERSION), str(baked.COMMIT), str(baked.BUILD_DATE)


VERSION, COMMIT, BUILD_DATE = _build_info()


def version_string(program: str) -> str:
    return f"{program} {VERSION} (commit {COMMIT}, built {BUILD_DATE})"
