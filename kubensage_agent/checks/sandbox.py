"""What a check process may use: rlimits, an unprivileged account, and a pids cgroup.

The bound on a check's processes is a pids cgroup of its own per run (pids.max), made under
the agent's own cgroup when the pids controller is writable there (cgroup v1 pids
hierarchy, or cgroup v2 where the agent may delegate). It holds root checks too, and it is
per run: a fork bomb fills its own cgroup and nobody else's.

Where no such cgroup can be made (a container with a read-only /sys/fs/cgroup, a systemd
unit with ProtectControlGroups), RLIMIT_NPROC stands in. It counts every task of the
account node-wide, and pods often run as `nobody` too, so a fixed number could stop every
check from starting on a busy node: each run gets the tasks its account has now plus
MAX_TASKS (counted in the host's /proc). Being per account, it is shared: a fork bomb can
use up the headroom of another check of the same account started before it. It does not
bind root (the kernel exempts root of the initial user namespace); there the service's own
pids limit (TasksMax, the pod's pid limit) holds a root check. The agent says at start
which bound is in force.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import math
import os
import resource
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from kubensage_agent.checks.manifest import Account
from kubensage_agent.parsers.cgroup import process_cgroup

logger = logging.getLogger(__name__)

MAX_TASKS = 64  # processes and threads one run may add
MEMORY_LIMIT_BYTES = 512 * 1024 * 1024  # address space
OPEN_FILES_LIMIT = 64
KILL_ROUNDS = 50
PARENT_PREFIX = "kubensage-checks-"  # + the agent's pid: one parent per agent process


def account_tasks(uid: int, proc: Path) -> int:
    """Tasks (threads) the account has now, node-wide: what RLIMIT_NPROC counts. One stat
    per process (its /proc directory belongs to its user), one more per process of `uid`
    (a task directory links 2 + its threads)."""
    count = 0
    try:
        with os.scandir(proc) as entries:
            for entry in entries:
                if not entry.name.isdigit():
                    continue
                try:
                    if entry.stat(follow_symlinks=False).st_uid != uid:
                        continue
                    count += max(1, os.stat(os.path.join(entry.path, "task")).st_nlink - 2)
                except OSError:
                    continue  # the process ended meanwhile
    except OSError:
        return 0
    return count


@dataclass(frozen=True)
class Limits:
    max_tasks: int = MAX_TASKS
    memory_bytes: int = MEMORY_LIMIT_BYTES
    open_files: int = OPEN_FILES_LIMIT
    proc: Path = Path("/proc")  # the host's, where RLIMIT_NPROC's count is seen whole

    def rlimits(
        self, timeout_seconds: float, account: Account, own_cgroup: bool
    ) -> tuple[tuple[int, int, int], ...]:
        """(resource, soft, hard): CPU time matches the wall timeout (SIGXCPU, then SIGKILL);
        processes, without a cgroup of its own: what the account has now plus a budget."""
        cpu = math.ceil(timeout_seconds) + 1
        limits = [
            (resource.RLIMIT_CPU, cpu, cpu + 1),
            (resource.RLIMIT_AS, self.memory_bytes, self.memory_bytes),
            (resource.RLIMIT_NOFILE, self.open_files, self.open_files),
            (resource.RLIMIT_CORE, 0, 0),
        ]
        if not account.is_root and not own_cgroup:
            tasks = account_tasks(account.uid, self.proc) + self.max_tasks
            limits.append((resource.RLIMIT_NPROC, tasks, tasks))
        return tuple(limits)


def pids_hierarchy(mounts: str) -> tuple[str, int] | None:
    """Mount point and version of the hierarchy that may hold the pids controller: the v1
    `pids` mount when there is one, else the cgroup2 mount (whose controllers decide)."""
    unified = None
    for raw in mounts.splitlines():
        fields = raw.split()
        if len(fields) < 4:
            continue
        if fields[2] == "cgroup" and "pids" in fields[3].split(","):
            return fields[1], 1
        if fields[2] == "cgroup2" and unified is None:
            unified = fields[1]
    return (unified, 2) if unified is not None else None


def _write(path: Path, text: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
    try:
        os.write(fd, text.encode())
    finally:
        os.close(fd)


def _pids_in(group: Path) -> list[int]:
    try:
        return [int(line) for line in (group / "cgroup.procs").read_text().split()]
    except (OSError, ValueError):
        return []


class RunCgroup:
    """One run's pids cgroup: the child joins it before exec; everything in it dies with it."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.procs = path / "cgroup.procs"

    def kill_all(self, leader: int) -> None:
        """SIGKILL every process of the run; reap those that became ours, except `leader`,
        whose status belongs to its Popen."""
        killed: set[int] = set()
        for _ in range(KILL_ROUNDS):
            pids = _pids_in(self.path)
            if not pids:
                break
            for pid in pids:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            killed.update(pids)
            time.sleep(0.01)
        for pid in killed - {
            leader
        }:  # orphans of the run are the agent's children when it is PID 1
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, os.WNOHANG)

    def remove(self, leader: int) -> None:
        """rmdir once its processes are gone (they need a moment to exit after SIGKILL)."""
        for _ in range(KILL_ROUNDS):
            try:
                self.path.rmdir()
                return
            except FileNotFoundError:
                return
            except OSError as exc:
                if exc.errno != errno.EBUSY:
                    break
            self.kill_all(leader)
            time.sleep(0.02)
        logger.warning("could not remove check cgroup %s", self.path)


def _remove_abandoned(home: Path) -> None:
    """Empty parents left by agents that died without cleaning up (rmdir fails on others)."""
    with contextlib.suppress(OSError):
        for leftover in home.glob(f"{PARENT_PREFIX}*"):
            owner = leftover.name.removeprefix(PARENT_PREFIX)
            if owner.isdigit() and not os.path.exists(f"/proc/{owner}"):
                with contextlib.suppress(OSError):
                    leftover.rmdir()


class PidsCgroups:
    """Makes per-run pids cgroups under `parent`, or none when `parent` is None."""

    def __init__(self, parent: Path | None, max_pids: int = MAX_TASKS) -> None:
        self.parent = parent
        self.max_pids = max_pids
        self._runs = 0

    @classmethod
    def detect(cls, max_pids: int = MAX_TASKS, proc: Path = Path("/proc")) -> PidsCgroups:
        """Under the agent's own cgroup in the pids hierarchy, when it may write there."""
        try:
            found = pids_hierarchy((proc / "self/mounts").read_text())
            own_cgroups = (proc / "self/cgroup").read_text()
        except OSError:
            found = None
        parent = None
        if found is not None:
            mount, version = found
            own = process_cgroup(own_cgroups, "pids" if version == 1 else "")
            if own is not None:
                home = Path(mount) / own.lstrip("/")
                _remove_abandoned(home)
                parent = cls._prepare(home / f"{PARENT_PREFIX}{os.getpid()}", version)
        return cls(parent, max_pids)

    @staticmethod
    def _prepare(parent: Path, version: int) -> Path | None:
        """The parent of the runs' cgroups, made ready; None where the agent may not.
        On v2 the pids controller must also be handed down to the runs through it."""
        created = False
        try:
            if not parent.is_dir():
                parent.mkdir()
                created = True
            if version == 2:
                _write(parent / "cgroup.subtree_control", "+pids")
        except OSError:
            if created:
                with contextlib.suppress(OSError):
                    parent.rmdir()
            return None
        return parent

    def close(self) -> None:
        """Remove the parent when the agent stops (its runs' cgroups are gone by then)."""
        if self.parent is not None:
            with contextlib.suppress(OSError):
                self.parent.rmdir()

    def create(self, name: str) -> RunCgroup | None:
        if self.parent is None:
            return None
        self._runs += 1
        path = self.parent / f"{self._runs}-{name}"
        try:
            path.mkdir()
            _write(path / "pids.max", str(self.max_pids))
        except OSError as exc:
            logger.warning("no pids cgroup for check %s: %s", name, exc)
            with contextlib.suppress(OSError):
                path.rmdir()
            return None
        return RunCgroup(path)


def preexec(
    account: Account, limits: Limits, timeout_seconds: float, cgroup: RunCgroup | None
) -> Callable[[], None]:
    """What the child does between fork and exec: join its cgroup (while still root), set
    its rlimits, then become `account`. Only plain syscalls: the parent has threads."""
    rlimits = limits.rlimits(timeout_seconds, account, own_cgroup=cgroup is not None)
    procs = str(cgroup.procs) if cgroup is not None else None

    def child() -> None:
        if procs is not None:
            fd = os.open(procs, os.O_WRONLY)
            os.write(fd, str(os.getpid()).encode())
            os.close(fd)
        for which, soft, hard in rlimits:
            resource.setrlimit(which, (soft, hard))
        if not account.is_root:
            os.setgroups([])
            os.setgid(account.gid)
            os.setuid(account.uid)

    return child
