"""statfs under a deadline, with a statfs that blocks until the test lets it return."""

from __future__ import annotations

import os
import shutil
import threading
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from kubensage_agent.collectors.errors import CollectorErrors
from kubensage_agent.collectors.node.base import NodeFiles
from kubensage_agent.collectors.node.filesystem import FilesystemCollector, FilesystemConfig
from kubensage_agent.collectors.node.statfs import StatfsRunner
from kubensage_agent.hostfs import HostPaths
from kubensage_api.telemetry import telemetry_pb2 as tm
from kubensage_lab.processes import eventually

REAL = Path(__file__).parent.parent / "fixtures" / "debian12-hybrid"
# bsize, frsize, blocks, bfree, bavail, files, ffree, favail, flag, namemax
ANSWER = os.statvfs_result((4096, 4096, 1000, 600, 500, 100, 40, 40, 0, 255))


class BlockingStatfs:
    """Answers at once, except for the paths in `blocking`, which hang until released."""

    def __init__(self, *blocking: str) -> None:
        self.blocking = {path: threading.Event() for path in blocking}
        self.calls: Counter[str] = Counter()

    def __call__(self, path: str) -> os.statvfs_result:
        self.calls[path] += 1
        gate = self.blocking.get(path)
        if gate is not None:
            gate.wait()
        return ANSWER

    def release(self, path: str) -> None:
        self.blocking[path].set()

    def release_all(self) -> None:
        for gate in self.blocking.values():
            gate.set()


@pytest.fixture
def statfs() -> Iterator[BlockingStatfs]:
    fake = BlockingStatfs("/nfs/a", "/nfs/b", "/nfs/c")
    yield fake
    fake.release_all()


def runner(fake: BlockingStatfs, max_threads: int = 8) -> StatfsRunner:
    return StatfsRunner(0.5, fake, max_threads=max_threads, stall_seconds=0.02)


def test_healthy_mounts_are_answered_every_cycle_by_one_thread(statfs: BlockingStatfs) -> None:
    # no stall is ever presumed here, so a second thread would mean one per cycle
    run = StatfsRunner(30.0, statfs, stall_seconds=30.0)
    paths = [f"/data/{i}" for i in range(50)]
    for _ in range(20):
        assert run.run(paths) == dict.fromkeys(paths, ANSWER)
    assert run.threads == 1
    assert sum(statfs.calls.values()) == 50 * 20


def test_a_call_that_never_returns_costs_its_mount_only(statfs: BlockingStatfs) -> None:
    run = runner(statfs)
    paths = ["/", "/nfs/a", "/home", "/var"]
    first = run.run(paths)
    assert set(first) == {"/", "/home", "/var"}
    assert run.outstanding() == {"/nfs/a"}
    # the stuck mount is not asked again while its call is out: one call at most
    second = run.run(paths)
    assert set(second) == {"/", "/home", "/var"}
    assert statfs.calls["/nfs/a"] == 1
    statfs.release("/nfs/a")
    eventually(lambda: not run.outstanding(), timeout=10)
    assert run.run(paths) == dict.fromkeys(paths, ANSWER)
    assert statfs.calls["/nfs/a"] == 2


def test_errors_are_answers_too(tmp_path: Path) -> None:
    run = StatfsRunner(5.0)
    answers = run.run([str(tmp_path), str(tmp_path / "absent")])
    assert isinstance(answers[str(tmp_path)], os.statvfs_result)
    assert isinstance(answers[str(tmp_path / "absent")], FileNotFoundError)


def test_stuck_mounts_hold_at_most_the_thread_bound(statfs: BlockingStatfs) -> None:
    run = runner(statfs, max_threads=2)
    paths = ["/nfs/a", "/nfs/b", "/ok/1", "/ok/2", "/nfs/c"]
    # two threads stuck on a and b; nothing left to ask the rest with
    assert run.run(paths) == {}
    assert run.outstanding() == {"/nfs/a", "/nfs/b"}
    assert run.threads == 2
    assert run.run(paths) == {}
    assert statfs.calls["/ok/1"] == 0
    statfs.release("/nfs/a")
    eventually(lambda: run.outstanding() == {"/nfs/b"}, timeout=10)
    # the freed thread asks the others; c blocks it again
    assert set(run.run(paths)) == {"/nfs/a", "/ok/1", "/ok/2"}
    assert run.outstanding() == {"/nfs/b", "/nfs/c"}
    assert run.threads == 2


@pytest.fixture
def host_root(tmp_path: Path) -> Path:
    root = tmp_path / "host"
    (root / "proc" / "1").mkdir(parents=True)
    shutil.copy(REAL / "proc/1/mounts", root / "proc/1/mounts")
    return root


def collect(collector: FilesystemCollector, root: Path) -> dict[str, tm.Filesystem]:
    node = tm.Node()
    collector(NodeFiles(HostPaths(root)), node)
    return {fs.mountpoint: fs for fs in node.filesystems}


def test_a_stuck_mount_is_marked_counted_and_logged_once(host_root: Path) -> None:
    shm = next(
        line.split()[1]
        for line in (host_root / "proc/1/mounts").read_text().splitlines()
        if line.startswith("shm ")
    )
    fake = BlockingStatfs(str(host_root) + shm)
    errors = CollectorErrors()
    collector = FilesystemCollector(FilesystemConfig(statfs_timeout=0.5), errors, fake)
    collector.runner.stall_seconds = 0.02
    try:
        for cycle in (1, 2, 3):
            filesystems = collect(collector, host_root)
            assert filesystems[shm].device_error
            assert not filesystems[shm].HasField("size_bytes")
            assert all(fs.size_bytes == 4096 * 1000 for m, fs in filesystems.items() if m != shm)
            assert errors.totals == {"filesystem": cycle}
        assert fake.calls[str(host_root) + shm] == 1
        assert "did not answer within 0.5s" in errors.once.active()[f"statfs:{shm}"]
    finally:
        fake.release_all()
    eventually(lambda: not collector.runner.outstanding(), timeout=10)
    filesystems = collect(collector, host_root)
    assert not filesystems[shm].device_error and filesystems[shm].files == 100
    assert f"statfs:{shm}" not in errors.once.active()


def test_the_table_is_read_again_when_it_changes(host_root: Path) -> None:
    collector = FilesystemCollector(FilesystemConfig(), CollectorErrors(), BlockingStatfs())
    before = collect(collector, host_root)
    with (host_root / "proc/1/mounts").open("a") as table:
        table.write("/dev/vdb /srv/data\\040set xfs ro,relatime 0 0\n")
    after = collect(collector, host_root)
    assert set(after) - set(before) == {"/srv/data set"}
    assert after["/srv/data set"].read_only and after["/srv/data set"].fstype == "xfs"


def test_filters_and_duplicates(host_root: Path) -> None:
    table = host_root / "proc/1/mounts"
    table.write_text(
        "/dev/vda / ext4 rw 0 0\n"
        "/dev/vda / ext4 ro 0 0\n"
        "tmpfs /run/user/0 tmpfs rw 0 0\n"
        "tmpfs /run/credentials/systemd-journald.service tmpfs ro 0 0\n"
        "overlay /var/lib/containerd/rootfs overlay rw 0 0\n"
        "/dev/vdb /var/lib/docker/volumes ext4 rw 0 0\n"
    )
    default = FilesystemCollector(FilesystemConfig(), CollectorErrors(), BlockingStatfs())
    assert list(collect(default, host_root)) == ["/", "/run/user/0"]
    assert not collect(default, host_root)["/"].read_only
    narrow = FilesystemCollector(
        FilesystemConfig(mount_points_exclude="^/run/", fs_types_exclude="^$"),
        CollectorErrors(),
        BlockingStatfs(),
    )
    assert list(collect(narrow, host_root)) == [
        "/",
        "/var/lib/containerd/rootfs",
        "/var/lib/docker/volumes",
    ]


@pytest.mark.parametrize(
    ("config", "message"),
    [
        (FilesystemConfig(mount_points_exclude="(unclosed"), "mount-points-exclude"),
        (FilesystemConfig(fs_types_exclude="*"), "fs-types-exclude"),
        (FilesystemConfig(statfs_timeout=0), "statfs-timeout"),
    ],
)
def test_bad_settings_are_refused_by_name(config: FilesystemConfig, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        config.validate()


def test_a_mount_gone_before_its_statfs_is_dropped_not_failed(host_root: Path) -> None:
    table = host_root / "proc/1/mounts"
    table.write_text("/dev/vda / ext4 rw 0 0\ntmpfs /run/pod-1 tmpfs rw 0 0\n")

    def statfs_while_unmounting(path: str) -> os.statvfs_result:
        if path.endswith("/run/pod-1"):
            table.write_text("/dev/vda / ext4 rw 0 0\n")
            raise FileNotFoundError(2, "No such file or directory", path)
        return ANSWER

    errors = CollectorErrors()
    collector = FilesystemCollector(FilesystemConfig(), errors, statfs_while_unmounting)
    assert list(collect(collector, host_root)) == ["/"]
    assert not errors.totals
