"""Where the host mounts its cgroup hierarchies, and a container's directory in each.

Found once from the host's /proc/1/mountinfo under --host-root: per-controller v1 mounts
(comounted `cpu,cpuacct` or separate), the v2 unified mount, or both on hybrid hosts
(v1 controllers plus a cgroup2 at /sys/fs/cgroup/unified that only carries PSI).
The mount points are taken from the host's init, never from /proc/<pid>/cgroup, whose
paths are relative to the reader's cgroup namespace.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from kubensage_agent.hostfs import HostPaths
from kubensage_agent.parsers.cgroup import CgroupMount

V1_CONTROLLERS = ("cpu", "cpuacct", "memory", "blkio", "pids")


@dataclass(frozen=True, slots=True)
class ContainerDirs:
    """A container's cgroup directories under the host root."""

    # 1: figures from the v1 controllers' directories; 2: from the unified one
    version: int
    v1: dict[str, str]
    # the v2 directory: all figures on a v2 host, PSI only on a hybrid one
    unified: str | None


@dataclass(frozen=True, slots=True)
class CgroupLayout:
    # controller -> directory of its hierarchy's root, under the host root
    v1: dict[str, str]
    unified: str | None

    @classmethod
    def from_mounts(cls, mounts: list[CgroupMount], host: HostPaths) -> CgroupLayout:
        v1: dict[str, str] = {}
        unified = None
        for mount in mounts:
            if not mount.whole_hierarchy:
                continue  # a bind mount of a subtree: relative paths do not apply
            where = str(host.path(mount.mountpoint))
            if mount.version == 2:
                unified = unified or where
                continue
            for controller in V1_CONTROLLERS:
                if controller in mount.options:
                    v1.setdefault(controller, where)
        return cls(v1=v1, unified=unified)

    def container_dirs(self, relative: str) -> ContainerDirs | None:
        """The directories of the cgroup at `relative`, or None when the host has none
        (the container is gone, or runs in a VM whose cgroups are not the host's)."""
        unified = f"{self.unified}{relative}" if self.unified else None
        if unified is not None and not os.path.isdir(unified):
            unified = None
        if not self.v1:
            return None if unified is None else ContainerDirs(2, {}, unified)
        dirs = {
            controller: f"{root}{relative}"
            for controller, root in self.v1.items()
            if os.path.isdir(f"{root}{relative}")
        }
        return ContainerDirs(1, dirs, unified) if dirs else None
