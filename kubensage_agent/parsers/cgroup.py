"""/proc/<pid>/cgroup and /proc/self/mounts: where a process sits in the cgroup v2 tree."""

from __future__ import annotations


def parse_unified_path(proc_cgroup: str) -> str | None:
    """The cgroup v2 path of a process (the `0::<path>` line), or None on a pure v1 host."""
    for raw in proc_cgroup.splitlines():
        hierarchy, _, rest = raw.partition(":")
        controllers, _, path = rest.partition(":")
        if hierarchy == "0" and controllers == "" and path.startswith("/"):
            return path
    return None


def find_cgroup2_mount(mounts: str) -> str | None:
    """Mount point of the cgroup2 filesystem (/sys/fs/cgroup, or .../unified on hybrid hosts)."""
    for raw in mounts.splitlines():
        fields = raw.split()
        if len(fields) >= 3 and fields[2] == "cgroup2":
            return fields[1]
    return None
