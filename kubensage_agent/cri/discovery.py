"""Find the node's CRI socket: explicit wins, else a fixed probe order.

A socket counts only when it answers runtime.v1 Version.
"""

from __future__ import annotations

import stat
from dataclasses import dataclass, field
from pathlib import Path

from kubensage_agent.cri.client import CriClient, CriError, CriVersionError, normalize_endpoint
from kubensage_agent.hostfs import HostPaths
from kubensage_api.cri import api_pb2

CANDIDATES: tuple[tuple[str, str], ...] = (
    ("containerd", "/run/containerd/containerd.sock"),
    ("containerd", "/var/run/containerd/containerd.sock"),
    ("k3s containerd", "/run/k3s/containerd/containerd.sock"),
    ("CRI-O", "/var/run/crio/crio.sock"),
    ("cri-dockerd", "/var/run/cri-dockerd.sock"),
    ("dockershim", "/var/run/dockershim.sock"),
)
MAX_SYMLINK_HOPS = 40


@dataclass(frozen=True)
class Attempt:
    endpoint: str
    outcome: str


@dataclass(frozen=True)
class Detected:
    endpoint: str
    version: api_pb2.VersionResponse


@dataclass
class DiscoveryError(Exception):
    attempts: list[Attempt] = field(default_factory=list)

    def __str__(self) -> str:
        tried = "\n".join(f"  {a.endpoint}: {a.outcome}" for a in self.attempts)
        return f"no CRI runtime answered runtime.v1 Version; tried:\n{tried}"


def resolve_in_root(paths: HostPaths, absolute: str) -> Path:
    """Resolve `absolute` as the host would, keeping absolute symlink targets inside the root.

    /var/run is usually a symlink to /run; followed naively from inside a container it
    would lead to the container's own /run instead of the host's.
    """
    pending = [part for part in absolute.split("/") if part]
    current = paths.root
    hops = 0
    while pending:
        part = pending.pop(0)
        candidate = current / part
        if candidate.is_symlink():
            hops += 1
            if hops > MAX_SYMLINK_HOPS:
                raise OSError(f"too many symlinks resolving {absolute}")
            target = str(candidate.readlink())
            pending = [p for p in target.split("/") if p] + pending
            if target.startswith("/"):
                current = paths.root
        elif part == "..":
            current = current.parent if current != paths.root else current
        else:
            current = candidate
    return current


def probe(endpoint: str, timeout: float) -> api_pb2.VersionResponse:
    client = CriClient(endpoint, timeout)
    try:
        return client.version()
    finally:
        client.close()


def _probe_socket(path: Path, timeout: float) -> tuple[api_pb2.VersionResponse | None, str]:
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        return None, "not present"
    except OSError as exc:
        return None, f"cannot stat: {exc.strerror}"
    if not stat.S_ISSOCK(mode):
        return None, "exists but is not a socket"
    try:
        return probe(f"unix://{path}", timeout), "ok"
    except CriVersionError as exc:
        return None, str(exc)
    except CriError as exc:
        return None, f"no answer to runtime.v1 Version ({exc})"


def discover(paths: HostPaths, explicit: str | None, timeout: float) -> Detected:
    attempts: list[Attempt] = []
    if explicit:
        endpoint = normalize_endpoint(explicit)
        target = Path(endpoint[len("unix://") :]) if endpoint.startswith("unix://") else None
        if target is not None:
            version, outcome = _probe_socket(target, timeout)
        else:
            try:
                version, outcome = probe(endpoint, timeout), "ok"
            except CriError as exc:
                version, outcome = None, str(exc)
        attempts.append(Attempt(endpoint, outcome))
        if version is None:
            raise DiscoveryError(attempts)
        return Detected(endpoint, version)
    seen: set[Path] = set()
    for _name, candidate in CANDIDATES:
        try:
            resolved = resolve_in_root(paths, candidate)
        except OSError as exc:
            attempts.append(Attempt(f"unix://{paths.path(candidate)}", str(exc)))
            continue
        if resolved in seen:
            continue
        seen.add(resolved)
        version, outcome = _probe_socket(resolved, timeout)
        shown = paths.path(candidate)
        label = f"unix://{shown}" + (f" (-> {resolved})" if shown != resolved else "")
        attempts.append(Attempt(label, outcome))
        if version is not None:
            return Detected(f"unix://{resolved}", version)
    raise DiscoveryError(attempts)
