"""/proc/<pid>/mountinfo: where the host mounts its cgroup hierarchies (v1, v2, or both)."""

from __future__ import annotations

import re
from dataclasses import dataclass

# mountinfo escapes space, tab, newline and backslash in paths as \ooo (octal)
ESCAPE = re.compile(r"\\([0-7]{3})")


@dataclass(frozen=True, slots=True)
class CgroupMount:
    mountpoint: str
    # 1 for a cgroup v1 hierarchy, 2 for the unified (cgroup2) hierarchy
    version: int
    # v1: the super options, among them the hierarchy's controllers ("cpu", "cpuacct",
    # "memory", ...); v2: empty (its controllers are listed in cgroup.controllers)
    options: frozenset[str]
    # the hierarchy's directory this mount shows; "/" (or "/.."-relative when read from
    # inside a cgroup namespace) for a mount of the whole hierarchy
    root: str

    @property
    def whole_hierarchy(self) -> bool:
        return self.root == "/" or self.root.startswith("/..")


def _unescape(path: str) -> str:
    return ESCAPE.sub(lambda m: chr(int(m.group(1), 8)), path) if "\\" in path else path


def parse_cgroup_mounts(mountinfo: str) -> list[CgroupMount]:
    """The cgroup and cgroup2 mounts of a mountinfo file, in file order.

    Line format (proc(5)): `id parent major:minor root mountpoint options [optional...] -
    fstype source super-options`; v1 controllers are in the super options.
    """
    mounts = []
    for number, raw in enumerate(mountinfo.splitlines(), 1):
        if not raw.strip():
            continue
        before, separator, after = raw.partition(" - ")
        fields, tail = before.split(), after.split()
        if not separator or len(fields) < 6 or len(tail) < 3:
            raise ValueError(f"malformed mountinfo line {number}: {raw!r}")
        fstype, super_options = tail[0], tail[2]
        if fstype not in ("cgroup", "cgroup2"):
            continue
        root, mountpoint = _unescape(fields[3]), _unescape(fields[4])
        if fstype == "cgroup2":
            mounts.append(CgroupMount(mountpoint, 2, frozenset(), root))
        else:
            mounts.append(CgroupMount(mountpoint, 1, frozenset(super_options.split(",")), root))
    return mounts


def process_cgroup(proc_cgroup: str, controller: str = "") -> str | None:
    """A process's path (/proc/<pid>/cgroup) in the v1 hierarchy holding `controller`
    ("8:pids:/path"), or in the v2 hierarchy ("0::/path") when `controller` is empty. Only
    for the agent's own cgroup: a container's is found from its runtime, never this way."""
    for raw in proc_cgroup.splitlines():
        hierarchy, _, rest = raw.partition(":")
        controllers, _, path = rest.partition(":")
        if not path.startswith("/"):
            continue
        if controller and controller in controllers.split(","):
            return path
        if not controller and hierarchy == "0" and controllers == "":
            return path
    return None
