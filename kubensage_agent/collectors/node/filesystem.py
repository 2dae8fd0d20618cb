"""Filesystem sizes and inodes: statfs(2) of every mount point in the host's mount table
(/proc/1/mounts under the host root) that passes the mount-point and type filters.

The filters' defaults are node_exporter 1.5's, leaving out pseudo filesystems and
container layers. Each statfs runs under a deadline (see statfs.py): a mount that does
not answer is reported with device_error, counted, logged once, and skipped until its
call returns.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field

from kubensage_agent.collectors.errors import CollectorErrors
from kubensage_agent.collectors.node.base import NodeFiles, Step, compile_pattern
from kubensage_agent.collectors.node.mounttable import MountTable
from kubensage_agent.collectors.node.statfs import StatfsAnswer, StatfsRunner
from kubensage_agent.parsers.mounts import MountEntry, parse_mounts
from kubensage_api.telemetry import telemetry_pb2 as tm

NAME = "filesystem"
# node_exporter v1.5.0, collector/filesystem_linux.go defMountPointsExcluded and
# defFSTypesExcluded (Debian's package ships other defaults; these are upstream's)
DEFAULT_MOUNT_POINTS_EXCLUDE = (
    r"^/(dev|proc|run/credentials/.+|sys|var/lib/docker/.+|var/lib/containers/storage/.+)($|/)"
)
DEFAULT_FS_TYPES_EXCLUDE = (
    r"^(autofs|binfmt_misc|bpf|cgroup2?|configfs|debugfs|devpts|devtmpfs|fusectl|hugetlbfs"
    r"|iso9660|mqueue|nsfs|overlay|proc|procfs|pstore|rpc_pipefs|securityfs|selinuxfs"
    r"|squashfs|sysfs|tracefs)$"
)
# node_exporter's --collector.filesystem.mount-timeout default
DEFAULT_STATFS_TIMEOUT = 5.0
MAX_STATFS_TIMEOUT = 60.0


@dataclass(frozen=True)
class FilesystemConfig:
    mount_points_exclude: str = field(
        default=DEFAULT_MOUNT_POINTS_EXCLUDE,
        metadata={"help": "Regex of mount points to leave out."},
    )
    fs_types_exclude: str = field(
        default=DEFAULT_FS_TYPES_EXCLUDE,
        metadata={"help": "Regex of filesystem types to leave out."},
    )
    statfs_timeout: float = field(
        default=DEFAULT_STATFS_TIMEOUT,
        metadata={
            "help": "Seconds a cycle waits for statfs answers; a mount that has not "
            "answered is reported with an error and skipped until it does."
        },
    )

    def validate(self) -> None:
        compile_pattern(self.mount_points_exclude, "mount-points-exclude")
        compile_pattern(self.fs_types_exclude, "fs-types-exclude")
        if not 0 < self.statfs_timeout <= MAX_STATFS_TIMEOUT:
            raise ValueError(f"statfs-timeout must be in (0, {MAX_STATFS_TIMEOUT:g}] seconds")


class FilesystemCollector:
    def __init__(
        self,
        config: FilesystemConfig,
        errors: CollectorErrors,
        statfs: Callable[[str], os.statvfs_result] = os.statvfs,
    ) -> None:
        self.mount_points_exclude = compile_pattern(
            config.mount_points_exclude, "mount-points-exclude"
        )
        self.fs_types_exclude = compile_pattern(config.fs_types_exclude, "fs-types-exclude")
        self.runner = StatfsRunner(config.statfs_timeout, statfs)
        self.errors = errors
        self.table = MountTable()
        # pid 1's table, or the agent's own where hidepid= hides pid 1
        self._sources: tuple[tuple[str, ...], tuple[str, ...]] = (("1", "mounts"), ("mounts",))
        # the last table read and the mounts selected from it: tables rarely change
        # between cycles, and a busy node's runs to hundreds of lines
        self._table = ""
        self._selected: list[tuple[MountEntry, str]] = []
        self._failing: set[str] = set()

    def _mounts(self, files: NodeFiles) -> list[tuple[MountEntry, str]]:
        """The selected mounts, each with the path to statfs under the host root."""
        table = self._read_table(files)
        if table != self._table:
            root = str(files.paths.root).rstrip("/")
            self._selected = [
                (entry, root + entry.mountpoint) for entry in self._select(parse_mounts(table))
            ]
            self._table = table
        return self._selected

    def _read_table(self, files: NodeFiles) -> str:
        first, second = self._sources
        try:
            return self.table.read(files.proc_path(*first))
        except FileNotFoundError:
            table = self.table.read(files.proc_path(*second))
            self._sources = (second, first)
            return table

    def _select(self, entries: list[MountEntry]) -> list[MountEntry]:
        """Mounts that pass the filters, each (device, mount point, type) once: a mount
        stacked on another of the same identity would report the same figures."""
        selected: dict[tuple[str, str, str], MountEntry] = {}
        for entry in entries:
            if self.mount_points_exclude.search(entry.mountpoint) or self.fs_types_exclude.search(
                entry.fstype
            ):
                continue
            selected.setdefault((entry.device, entry.mountpoint, entry.fstype), entry)
        return list(selected.values())

    def __call__(self, files: NodeFiles, node: tm.Node) -> None:
        mounts = self._mounts(files)
        answers = self.runner.run(dict.fromkeys(target for _, target in mounts))
        if any(isinstance(answer, FileNotFoundError) for answer in answers.values()):
            mounts = self._still_mounted(files, mounts)
        failing = set()
        for entry, target in mounts:
            answer = answers.get(target)
            if isinstance(answer, os.statvfs_result):
                # f_bsize, as node_exporter multiplies (equal to f_frsize on Linux
                # filesystems in use)
                node.filesystems.add(
                    device=entry.device,
                    mountpoint=entry.mountpoint,
                    fstype=entry.fstype,
                    read_only=entry.read_only,
                    size_bytes=answer.f_blocks * answer.f_bsize,
                    free_bytes=answer.f_bfree * answer.f_bsize,
                    available_bytes=answer.f_bavail * answer.f_bsize,
                    files=answer.f_files,
                    files_free=answer.f_ffree,
                )
                continue
            node.filesystems.add(
                device=entry.device,
                mountpoint=entry.mountpoint,
                fstype=entry.fstype,
                read_only=entry.read_only,
                device_error=True,
            )
            failing.add(entry.mountpoint)
            self.errors.failure(
                NAME,
                f"statfs:{entry.mountpoint}",
                f"filesystem {entry.mountpoint} ({entry.device}): {self._why(target, answer)}",
            )
        for recovered in self._failing - failing:
            self.errors.once.clear(f"statfs:{recovered}")
        self._failing = failing

    def _still_mounted(
        self, files: NodeFiles, mounts: list[tuple[MountEntry, str]]
    ) -> list[tuple[MountEntry, str]]:
        """Without the mounts that went away while their statfs was on its way (a pod
        deleted meanwhile): gone, not failing. One missing from a table that has not
        changed stays, as an error (a mount point the agent cannot see)."""
        current = {entry for entry, _ in self._mounts(files)}
        return [(entry, target) for entry, target in mounts if entry in current]

    def _why(self, target: str, answer: StatfsAnswer | None) -> str:
        if answer is not None:
            return f"statfs failed: {answer}"
        if target in self.runner.outstanding():
            return (
                f"statfs did not answer within {self.runner.timeout:g}s; skipped until it returns"
            )
        return (
            f"statfs not asked within {self.runner.timeout:g}s: the statfs threads were "
            "held by mounts that do not answer"
        )


def build(config: FilesystemConfig, errors: CollectorErrors) -> Step:
    return FilesystemCollector(config, errors)
