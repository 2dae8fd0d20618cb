"""One run of one check: sandboxed process, bounded output, killed with its group on timeout.

Output: the first 4 KiB are kept. Past that the pipe is still drained (and discarded) up
to DRAIN_LIMIT bytes, so a check that prints a little too much still ends with its own
exit code; a check that goes on past DRAIN_LIMIT is flooding, and is killed at once
with an UNKNOWN result. Memory held is 4 KiB plus one read buffer, and reading costs at
most DRAIN_LIMIT bytes of copying per run, however much the check writes.
"""

from __future__ import annotations

import contextlib
import os
import select
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from kubensage_agent.checks.directory import refusal
from kubensage_agent.checks.manifest import CheckSpec
from kubensage_agent.checks.sandbox import KILL_ROUNDS, Limits, PidsCgroups, RunCgroup, preexec
from kubensage_api.telemetry import telemetry_pb2 as tm

OUTPUT_LIMIT = 4096
DRAIN_LIMIT = 1024 * 1024
READ_CHUNK = 65536
REAP_SECONDS = 5.0
# after the check exits, how long output left in the pipe (or held by an escaped child) is read
EXIT_GRACE_SECONDS = 1.0
# kernels before 5.3 have no pidfd: the check's exit is then looked for this often
EXIT_POLL_SECONDS = 0.1
SAFE_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
NAGIOS_STATES = {0: tm.CHECK_STATE_OK, 1: tm.CHECK_STATE_WARNING, 2: tm.CHECK_STATE_CRITICAL}


@dataclass(frozen=True)
class Outcome:
    state: tm.CheckState.ValueType
    exit_code: int | None
    output: str
    duration_seconds: float
    ran_at_unix_nanos: int
    timed_out: bool = False
    # it did not run: refused (ownership, mode, manifest) or failed to start
    error: str | None = None


def state_of(exit_code: int) -> tm.CheckState.ValueType:
    """Nagios convention: 0 OK, 1 WARNING, 2 CRITICAL, anything else UNKNOWN."""
    return NAGIOS_STATES.get(exit_code, tm.CHECK_STATE_UNKNOWN)


def bounded_text(raw: bytes, note: str = "", limit: int = OUTPUT_LIMIT) -> str:
    """`raw` decoded, with `note` appended, in at most `limit` UTF-8 bytes."""
    tail = f"\n[{note}]".encode() if note else b""
    room = max(0, limit - len(tail))
    # invalid bytes become U+FFFD (3 bytes each), so cut again after decoding
    text = raw[:room].decode(errors="replace").encode()[:room].decode(errors="ignore")
    return text + tail.decode()


def not_run(reason: str, started_unix_nanos: int) -> Outcome:
    return Outcome(
        state=tm.CHECK_STATE_UNKNOWN,
        exit_code=None,
        output=bounded_text(reason.encode()),
        duration_seconds=0.0,
        ran_at_unix_nanos=started_unix_nanos,
        error=reason,
    )


class _Reader:
    """Reads the check's combined output until it has exited and its output ended, or a
    flood, a cancel or the deadline."""

    def __init__(
        self, process: subprocess.Popen[bytes], cgroup: RunCgroup | None, cancel_fd: int | None
    ) -> None:
        assert process.stdout is not None
        self.process = process
        self.cgroup = cgroup
        self.pipe = process.stdout.fileno()
        self.kept = bytearray()
        self.seen = 0
        self.exited = False
        self.ended = False
        self.flooded = False
        self.cancelled = False
        self._poller = select.poll()
        self._poller.register(self.pipe, select.POLLIN)
        try:
            self._pidfd: int | None = os.pidfd_open(process.pid)
            self._poller.register(self._pidfd, select.POLLIN)
        except OSError:
            self._pidfd = None
        self._cancel_fd = cancel_fd
        if cancel_fd is not None:
            self._poller.register(cancel_fd, select.POLLIN)

    def close(self) -> None:
        if self._pidfd is not None:
            os.close(self._pidfd)

    def _has_exited(self) -> bool:
        """Without a pidfd: has the check exited? (WNOWAIT leaves it for Popen to reap)"""
        try:
            found = os.waitid(os.P_PID, self.process.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
        except ChildProcessError:
            return True
        return found is not None

    def _read(self) -> None:
        chunk = os.read(self.pipe, READ_CHUNK)
        if not chunk:
            self.ended = True
            self._poller.unregister(self.pipe)
            return
        if len(self.kept) < OUTPUT_LIMIT:
            self.kept += chunk[: OUTPUT_LIMIT - len(self.kept)]
        self.seen += len(chunk)
        self.flooded = self.seen > DRAIN_LIMIT

    def _on_exit(self) -> None:
        """What the check left behind dies with it: it would hold the pipe open."""
        self.exited = True
        if self._pidfd is not None:
            self._poller.unregister(self._pidfd)
        kill_group(self.process.pid)  # safe: the unreaped leader still holds the pgid
        if self.cgroup is not None:
            self.cgroup.kill_all(self.process.pid)

    def run(self, deadline: float) -> None:
        while not (self.exited and self.ended) and not self.flooded and not self.cancelled:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return
            if self._pidfd is None and not self.exited:
                remaining = min(remaining, EXIT_POLL_SECONDS)
            events = self._poller.poll(remaining * 1000)
            for fd, _ in events:
                if fd == self._pidfd:
                    self._on_exit()
                    deadline = min(deadline, time.monotonic() + EXIT_GRACE_SECONDS)
                elif fd == self._cancel_fd:
                    self.cancelled = True
                elif fd == self.pipe:
                    self._read()
            if self._pidfd is None and not self.exited and self._has_exited():
                self._on_exit()
                deadline = min(deadline, time.monotonic() + EXIT_GRACE_SECONDS)


def kill_group(pgid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)


def _reap_group(pgid: int) -> None:
    """Reap members of the check's group that became our children (the agent is PID 1 in
    its container, so orphans come to it); other children's statuses are left alone."""
    while True:
        try:
            if os.waitid(os.P_PGID, pgid, os.WEXITED | os.WNOHANG) is None:
                return
        except ChildProcessError:
            return


def _end(process: subprocess.Popen[bytes], cgroup: RunCgroup | None) -> None:
    """Nothing of the check survives it: its group and cgroup are killed and it is reaped."""
    if process.poll() is None:
        kill_group(process.pid)  # before reaping, while the leader holds the pgid
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(REAP_SECONDS)
    if cgroup is not None:  # exact: the cgroup lists every live process of the run
        cgroup.kill_all(process.pid)
        cgroup.remove(process.pid)
    else:  # a fork bomb's children may still be forking: kill until the group is empty
        for _ in range(KILL_ROUNDS):
            _reap_group(process.pid)
            try:
                os.killpg(process.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                break
            time.sleep(0.01)
    _reap_group(process.pid)
    if process.stdout is not None:
        process.stdout.close()


def _outcome(reader: _Reader, started: float, ran_at: int, timeout: float) -> Outcome:
    duration = time.monotonic() - started
    output = bytes(reader.kept)
    code = reader.process.returncode if reader.exited else None
    if reader.flooded:
        note = f"output over {DRAIN_LIMIT} bytes: check killed"
        return Outcome(tm.CHECK_STATE_UNKNOWN, None, bounded_text(output, note), duration, ran_at)
    if code is None:
        note = f"killed after the {timeout:g}s timeout"
        return Outcome(
            tm.CHECK_STATE_UNKNOWN, None, bounded_text(output, note), duration, ran_at, True
        )
    if code < 0:
        note = f"killed by {signal.Signals(-code).name}" if -code in signal.valid_signals() else ""
        return Outcome(tm.CHECK_STATE_UNKNOWN, None, bounded_text(output, note), duration, ran_at)
    return Outcome(state_of(code), code, bounded_text(output), duration, ran_at)


def run_check(
    spec: CheckSpec,
    cgroups: PidsCgroups,
    limits: Limits | None = None,
    cancel_fd: int | None = None,
) -> Outcome:
    """Run `spec` once under the sandbox and return what it said, never raising for it."""
    limits = limits or Limits()
    ran_at = time.time_ns()
    reason = refusal(spec.path)
    if reason is not None:
        return not_run(f"refused: {reason}", ran_at)
    cgroup = cgroups.create(spec.name)
    started = time.monotonic()
    try:
        process = subprocess.Popen(
            [str(spec.path), *spec.args],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            env={"PATH": SAFE_PATH},
            cwd=Path("/"),
            close_fds=True,
            start_new_session=True,
            # joining the run's cgroup must precede dropping root, which user= would do first;
            # the hook makes only plain syscalls, which are safe after fork in a threaded parent
            preexec_fn=preexec(spec.account, limits, spec.timeout_seconds, cgroup),  # noqa: PLW1509
        )
    except (OSError, subprocess.SubprocessError) as exc:
        if cgroup is not None:
            cgroup.remove(0)
        return not_run(f"could not start {spec.path}: {exc}", ran_at)
    reader = _Reader(process, cgroup, cancel_fd)
    try:
        reader.run(started + spec.timeout_seconds)
    finally:
        reader.close()
        _end(process, cgroup)
    return _outcome(reader, started, ran_at, spec.timeout_seconds)
