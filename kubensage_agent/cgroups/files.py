"""Cgroup interface files kept open, so a cycle's read of each is one pread.

Opening a file costs several times more than reading it (path walk through the cgroup
filesystem, then close); cgroup files are regenerated on every read at offset 0, so an
open descriptor stays current. Open descriptors are bounded by a budget taken from
RLIMIT_NOFILE; past it a file is opened for each read instead.
"""

from __future__ import annotations

import errno
import os
import resource

from kubensage_agent.hostfs import SMALL_FILE_BYTES, read_small_bytes

# descriptors left for everything else the agent opens (gRPC, spool, /proc reads)
RESERVED_DESCRIPTORS = 256
# the cgroup file is gone (container exited) or its kernel feature is switched off
GONE = frozenset({errno.ENOENT, errno.ENODEV, errno.ESRCH})
UNSUPPORTED = frozenset({errno.EOPNOTSUPP, errno.EINVAL})


class FdBudget:
    """How many cgroup files may stay open at once."""

    def __init__(self, limit: int) -> None:
        self.limit = max(0, limit)
        self.used = 0

    @classmethod
    def from_rlimit(cls) -> FdBudget:
        """Half of the open-file limit, raised to its hard maximum first (as Go programs
        such as the kubelet do): ~15 files per container at 110 containers need ~1700."""
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        if hard == resource.RLIM_INFINITY or hard > soft:
            target = hard if hard != resource.RLIM_INFINITY else 1 << 20
            try:
                resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
                soft = target
            except (ValueError, OSError):
                pass
        return cls(min(soft // 2, soft - RESERVED_DESCRIPTORS))

    def take(self) -> bool:
        if self.used >= self.limit:
            return False
        self.used += 1
        return True

    def give_back(self) -> None:
        self.used -= 1


class CgroupFile:
    """One interface file of one cgroup; `read` returns its current text."""

    __slots__ = ("budget", "fd", "path")

    def __init__(self, path: str, fd: int, budget: FdBudget | None) -> None:
        self.path = path
        self.fd = fd
        self.budget = budget

    @classmethod
    def open(cls, path: str, budget: FdBudget) -> CgroupFile | None:
        """The file at `path`, kept open when the budget allows; None when it does not exist."""
        try:
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            return None
        if budget.take():
            return cls(path, fd, budget)
        os.close(fd)
        return cls(path, -1, None)

    def read(self) -> bytes:
        """The file's current content, undecoded: most read the same as last cycle, and
        comparing bytes spares decoding them."""
        if self.fd < 0:
            return read_small_bytes(self.path)
        return os.pread(self.fd, SMALL_FILE_BYTES, 0)

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1
            if self.budget is not None:
                self.budget.give_back()
                self.budget = None
