"""Version, commit and build date; `make build` bakes all three into _build_info.py."""

from __future__ import annotations

import importlib

from kubensage_common._version import VERSION as RELEASE


def _build_info() -> tuple[str, str, str]:
    """(version, commit, build date): baked by the build, else the release version."""
    try:
        baked = importlib.import_module("kubensage_common._build_info")
    except ImportError:
        return RELEASE, "unknown", "unknown"
    return str(baked.VERSION), str(baked.COMMIT), str(baked.BUILD_DATE)


VERSION, COMMIT, BUILD_DATE = _build_info()


def version_string(program: str) -> str:
    return f"{program} {VERSION} (commit {COMMIT}, built {BUILD_DATE})"
