"""What a verbose ContainerStatus / PodSandboxStatus `info` tells beyond the CRI fields.

containerd and CRI-O put one JSON document in info["info"] with the process id and the
OCI runtime spec the container was created with; its `linux.cgroupsPath` names the
container's cgroup and its `linux.resources` the limits (containerd 1.6 leaves the CRI
`status.resources` empty). Other runtimes give none of this: every field stays empty.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

MAX_INFO_BYTES = 4 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class SpecResources:
    cpu_quota: int | None = None
    cpu_period: int | None = None
    cpu_shares: int | None = None
    memory_limit: int | None = None


@dataclass(frozen=True, slots=True)
class VerboseInfo:
    pid: int | None = None
    cgroups_path: str = ""
    # the containerd shim ("io.containerd.runc.v2", "io.containerd.kata.v2", ...)
    runtime_type: str = ""
    resources: SpecResources = field(default_factory=SpecResources)


def _object(parent: Any, key: str) -> dict[str, Any]:
    value = parent.get(key) if isinstance(parent, dict) else None
    return value if isinstance(value, dict) else {}


def _positive(parent: dict[str, Any], key: str) -> int | None:
    value = parent.get(key)
    # bool is an int in Python; a JSON true is no number here
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else None


def _text(parent: dict[str, Any], key: str) -> str:
    value = parent.get(key)
    return value if isinstance(value, str) else ""


def parse_verbose_info(info: Mapping[str, str]) -> VerboseInfo:
    """The facts above from a verbose status `info` map; missing or malformed parts are empty."""
    raw = info.get("info")
    if not raw or len(raw) > MAX_INFO_BYTES:
        return VerboseInfo()
    try:
        document = json.loads(raw)
    except ValueError:
        return VerboseInfo()
    if not isinstance(document, dict):
        return VerboseInfo()
    linux = _object(_object(document, "runtimeSpec"), "linux")
    resources = _object(linux, "resources")
    cpu, memory = _object(resources, "cpu"), _object(resources, "memory")
    return VerboseInfo(
        pid=_positive(document, "pid"),
        cgroups_path=_text(linux, "cgroupsPath"),
        runtime_type=_text(document, "runtimeType"),
        resources=SpecResources(
            cpu_quota=_positive(cpu, "quota"),
            cpu_period=_positive(cpu, "period"),
            cpu_shares=_positive(cpu, "shares"),
            memory_limit=_positive(memory, "limit"),
        ),
    )
