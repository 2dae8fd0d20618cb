"""A FUSE filesystem whose statfs hangs, served over the kernel's raw protocol (no libfuse).

It answers FUSE_INIT, then holds every FUSE_STATFS unanswered until told to answer, so a
statfs(2) of its mount point blocks in the kernel exactly as on a dead network mount.
Mount it only inside a private mount namespace (see statfs_fuse_scenario.py): any other
process that statfs's every mount (df, node_exporter) would hang on it too.
"""

from __future__ import annotations

import ctypes
import errno
import os
import struct
import threading
from pathlib import Path

from kubensage_agent.libc import LIBC, errno_error

MS_NOSUID, MS_NODEV, MNT_DETACH = 2, 4, 2
FUSE_INIT, FUSE_STATFS = 26, 17
# struct fuse_in_header: len, opcode, unique, nodeid, uid, gid, pid, total_extlen, padding
IN_HEADER = struct.Struct("<IIQQIIIHH")
# struct fuse_out_header: len, error, unique
OUT_HEADER = struct.Struct("<IiQ")
INIT_IN = struct.Struct("<IIII")
# struct fuse_init_out up to 7.31: major, minor, max_readahead, flags, max_background,
# congestion_threshold, max_write, time_gran, max_pages, map_alignment, flags2, unused[7]
INIT_OUT = struct.Struct("<IIIIHHIIHHI7I")
# struct fuse_kstatfs: blocks, bfree, bavail, files, ffree, bsize, namelen, frsize,
# padding, spare[6]
KSTATFS = struct.Struct("<QQQQQIIII6I")
READ_BUFFER = 1 << 20


def _check(result: int, what: str) -> None:
    if result != 0:
        raise errno_error(what)


class HangingFuse:
    def __init__(self, mountpoint: Path, source: str = "kubensage-hang") -> None:
        self.mountpoint = mountpoint
        self.source = source
        # what statfs answers once released: blocks, bfree, bavail, files, ffree, bsize
        self.answer = (1000, 600, 500, 100, 40, 4096)
        self.statfs_requests = 0
        self._fd = -1
        self._lock = threading.Lock()
        self._held: list[int] = []
        self._holding = True
        self._initialised = threading.Event()
        self._server: threading.Thread | None = None

    @property
    def held(self) -> int:
        with self._lock:
            return len(self._held)

    def mount(self) -> None:
        self.mountpoint.mkdir(parents=True, exist_ok=True)
        self._fd = os.open("/dev/fuse", os.O_RDWR | os.O_CLOEXEC)
        options = f"fd={self._fd},rootmode=40000,user_id=0,group_id=0"
        _check(
            LIBC.mount(
                self.source.encode(),
                str(self.mountpoint).encode(),
                b"fuse",
                ctypes.c_ulong(MS_NOSUID | MS_NODEV),
                options.encode(),
            ),
            "mount fuse",
        )
        self._server = threading.Thread(target=self._serve, name="fuse", daemon=True)
        self._server.start()
        if not self._initialised.wait(30):
            raise RuntimeError("the kernel sent no FUSE_INIT within 30 s")

    def hold(self) -> None:
        with self._lock:
            self._holding = True

    def answer_held(self) -> None:
        """Answer every held statfs, and answer new ones at once from now on."""
        with self._lock:
            self._holding = False
            held, self._held = self._held, []
        for unique in held:
            self._reply(unique, KSTATFS.pack(*self._kstatfs()))

    def connection(self) -> str:
        """The connection's number under /sys/fs/fuse/connections: its device minor."""
        for line in Path("/proc/self/mountinfo").read_text().splitlines():
            fields = line.split()
            if fields[4] == str(self.mountpoint):
                return fields[2].split(":")[1]
        raise LookupError(f"{self.mountpoint} is not mounted")

    def abort(self) -> None:
        """Abort the connection as an administrator would: every request fails ENOTCONN."""
        control = Path("/sys/fs/fuse/connections")
        if not (control / self.connection()).exists():
            _check(LIBC.mount(b"fusectl", str(control).encode(), b"fusectl", 0, None), "fusectl")
        (control / self.connection() / "abort").write_text("1")

    def unmount(self) -> None:
        if self._fd >= 0:
            LIBC.umount2(str(self.mountpoint).encode(), MNT_DETACH)
            os.close(self._fd)
            self._fd = -1
        if self._server is not None:
            self._server.join(timeout=10)

    def _kstatfs(self) -> tuple[int, ...]:
        blocks, bfree, bavail, files, ffree, bsize = self.answer
        return (blocks, bfree, bavail, files, ffree, bsize, 255, bsize, 0, *([0] * 6))

    def _reply(self, unique: int, body: bytes = b"", error: int = 0) -> None:
        os.write(self._fd, OUT_HEADER.pack(OUT_HEADER.size + len(body), error, unique) + body)

    def _serve(self) -> None:
        while True:
            try:
                request = os.read(self._fd, READ_BUFFER)
            except OSError:
                return  # ENODEV once unmounted or aborted
            _, opcode, unique, *_ = IN_HEADER.unpack_from(request)
            if opcode == FUSE_INIT:
                _major, minor, readahead, _flags = INIT_IN.unpack_from(request, IN_HEADER.size)
                # version 7.31 at most; max_write 4096 (the smallest allowed)
                fields = (7, min(minor, 31), readahead, 0, 16, 12, 4096, 1, 0, 0, 0)
                body = INIT_OUT.pack(*fields, *([0] * 7))
                self._reply(unique, body)
                self._initialised.set()
            elif opcode == FUSE_STATFS:
                with self._lock:
                    self.statfs_requests += 1
                    if self._holding:
                        self._held.append(unique)
                        continue
                self._reply(unique, KSTATFS.pack(*self._kstatfs()))
            else:
                self._reply(unique, error=-errno.ENOSYS)
