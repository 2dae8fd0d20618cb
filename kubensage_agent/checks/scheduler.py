"""Runs every check on its own interval, off the collection path.

One thread keeps time and re-reads the directory when it changes (a fingerprint of
stat results, at most every RESCAN_SECONDS); a bounded pool runs the checks. The
collection cycle only copies the newest results (`results()`), so a slow or hanging
check never delays a report. The relay may switch checks on or off and change their
intervals (`apply_overrides`), never what runs.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections import Counter
from collections.abc import Hashable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from kubensage_agent.checks.directory import Refused, fingerprint, scan
from kubensage_agent.checks.manifest import (
    CheckDefaults,
    CheckSpec,
    ManifestError,
    valid_interval,
)
from kubensage_agent.checks.runner import Outcome, not_run, run_check
from kubensage_agent.checks.sandbox import Limits, PidsCgroups
from kubensage_api.telemetry import telemetry_pb2 as tm
from kubensage_common.checkrules import is_check_name, state_name
from kubensage_common.logsetup import OnceLogger

logger = logging.getLogger(__name__)

RESCAN_SECONDS = 2.0
MAX_OVERRIDES = 256

Entry = CheckSpec | Refused


@dataclass(frozen=True)
class Override:
    enabled: bool | None = None
    interval_seconds: float | None = None


@dataclass
class _Check:
    entry: Entry
    next_due: float
    enabled: bool = True
    interval_seconds: float = 0.0
    last_started: float | None = None
    in_flight: bool = False
    outcome: Outcome | None = None
    runs: Counter[str] = field(default_factory=Counter)


def _override(message: tm.CheckOverride) -> Override | None:
    """The override a relay asked for, or None (logged) when it is not acceptable."""
    if not is_check_name(message.name):
        logger.warning("relay sent an override for %r, which is no check name", message.name)
        return None
    interval = None
    if message.HasField("interval_seconds"):
        try:
            interval = valid_interval(message.interval_seconds)
        except ManifestError as exc:
            logger.warning("relay override for check %s ignored: %s", message.name, exc)
    enabled = message.enabled if message.HasField("enabled") else None
    return Override(enabled, interval)


def _describe(entry: Entry) -> str:
    if isinstance(entry, Refused):
        return f"refused ({entry.reason})"
    state = "" if entry.enabled else ", disabled by its manifest"
    return (
        f"every {entry.interval_seconds:g}s, timeout {entry.timeout_seconds:g}s, "
        f"as {entry.account.name}{state}"
    )


class CheckScheduler:
    def __init__(
        self,
        directory: Path,
        *,
        defaults: CheckDefaults | None = None,
        max_concurrent: int = 4,
        cgroups: PidsCgroups | None = None,
        limits: Limits | None = None,
        rescan_seconds: float = RESCAN_SECONDS,
    ) -> None:
        self.directory = directory
        self.defaults = defaults or CheckDefaults()
        self.cgroups = cgroups if cgroups is not None else PidsCgroups(None)
        self.limits = limits or Limits()
        self.rescan_seconds = rescan_seconds
        self.errors_total = 0
        self._max_concurrent = max_concurrent
        self._checks: dict[str, _Check] = {}
        self._running: set[str] = set()  # submitted and not finished, even if since removed
        self._overrides: dict[str, Override] = {}
        self._fingerprint: Hashable = None
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._cancel_fd = os.eventfd(0)
        self._once = OnceLogger(logger)
        self._pool: ThreadPoolExecutor | None = None
        self._thread: threading.Thread | None = None

    # -- what the agent sees ------------------------------------------------------------

    def results(self) -> list[tm.CheckResult]:
        """The newest result of every enabled check that has run, as report messages."""
        with self._lock:
            return [
                self._message(name, check)
                for name, check in sorted(self._checks.items())
                if check.enabled and check.outcome is not None
            ]

    @staticmethod
    def _message(name: str, check: _Check) -> tm.CheckResult:
        outcome = check.outcome
        assert outcome is not None
        result = tm.CheckResult(
            name=name,
            state=outcome.state,
            output=outcome.output,
            duration_seconds=outcome.duration_seconds,
            ran_at_unix_nanos=outcome.ran_at_unix_nanos,
            timed_out=outcome.timed_out,
            interval_seconds=check.interval_seconds,
        )
        if outcome.exit_code is not None:
            result.exit_code = outcome.exit_code
        result.runs_total.update(check.runs)
        return result

    def running(self) -> list[str]:
        """Checks started or waiting for a free slot, for /status and tests."""
        with self._lock:
            return sorted(self._running)

    def apply_overrides(self, overrides: Iterable[tm.CheckOverride], replace: bool) -> None:
        """Settings from the relay: with `replace` the whole list, else merged by name."""
        wanted = {} if replace else dict(self._overrides)
        for message in overrides:
            override = _override(message)
            if override is None:
                continue
            held = wanted.get(message.name, Override())
            wanted[message.name] = Override(
                override.enabled if override.enabled is not None else held.enabled,
                override.interval_seconds
                if override.interval_seconds is not None
                else held.interval_seconds,
            )
            if len(wanted) >= MAX_OVERRIDES:
                logger.warning(
                    "relay sent more than %s check overrides; rest ignored", MAX_OVERRIDES
                )
                break
        with self._lock:
            if wanted != self._overrides:
                logger.info("relay check overrides now: %s", wanted or "none")
            self._overrides = wanted
            self._apply_settings(time.monotonic())
        self._wake.set()

    # -- lifecycle ----------------------------------------------------------------------

    def start(self) -> None:
        if not self.directory.is_dir():
            logger.info(
                "no check directory at %s (yet); checks start when it appears", self.directory
            )
        if self.cgroups.parent is not None:
            logger.info(
                "checks run in pids cgroups under %s (at most %s tasks each)",
                self.cgroups.parent,
                self.cgroups.max_pids,
            )
        else:
            logger.info(
                "no writable pids cgroup: a check's processes are bounded by RLIMIT_NPROC "
                "(not for root checks) and the agent's own pids limit"
            )
        self._pool = ThreadPoolExecutor(self._max_concurrent, thread_name_prefix="check")
        self._thread = threading.Thread(target=self._loop, name="checks", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop scheduling, kill the checks running now, and wait for them to be reaped."""
        self._stopping.set()
        os.eventfd_write(self._cancel_fd, 1)
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
        self.cgroups.close()
        os.close(self._cancel_fd)

    # -- the scheduling thread ----------------------------------------------------------

    def _loop(self) -> None:
        next_scan = 0.0
        while not self._stopping.is_set():
            now = time.monotonic()
            until_due = self.rescan_seconds
            try:
                if now >= next_scan:
                    self._rescan(now)
                    next_scan = now + self.rescan_seconds
                until_due = self._launch_due(now)
                self._once.clear("checks:loop")
            except Exception as exc:  # checks must keep their schedule whatever one pass hit
                self._once.problem("checks:loop", f"check scheduling failed: {exc!r}")
            self._wake.wait(max(0.0, min(until_due, next_scan - now)))
            self._wake.clear()

    def _rescan(self, now: float) -> None:
        seen = fingerprint(self.directory)
        if seen == self._fingerprint:
            return
        self._fingerprint = seen
        found = scan(self.directory, self.defaults)
        for name, why in found.ignored.items():
            self._once.problem(f"check-ignored:{name}", f"check {name} ignored: {why}")
        for cause in self._once.active():
            name = cause.removeprefix("check-ignored:")
            if cause.startswith("check-ignored:") and name not in found.ignored:
                self._once.clear(cause)
        with self._lock:
            for name in set(self._checks) - set(found.checks):
                del self._checks[name]
                logger.info("check %s removed", name)
            for name, entry in found.checks.items():
                held = self._checks.get(name)
                if held is None:
                    self._checks[name] = _Check(entry, next_due=now)
                    logger.info("check %s added: %s", name, _describe(entry))
                else:
                    held.entry = entry
            self._apply_settings(now)

    def _apply_settings(self, now: float) -> None:
        """Effective enabled/interval of every check: its manifest, then the relay's word."""
        for name, check in self._checks.items():
            override = self._overrides.get(name, Override())
            entry = check.entry
            enabled = entry.enabled if isinstance(entry, CheckSpec) else True
            if override.enabled is not None:
                enabled = override.enabled
            interval = override.interval_seconds or entry.interval_seconds
            if enabled and not check.enabled:
                check.next_due = now
            elif check.enabled and not enabled:
                check.outcome = None  # a switched-off check reports nothing, not a stale result
            elif interval != check.interval_seconds and check.last_started is not None:
                check.next_due = min(check.next_due, check.last_started + interval)
            check.enabled, check.interval_seconds = enabled, interval

    def _launch_due(self, now: float) -> float:
        """Start every enabled check that is due; seconds until the next one is."""
        until_next = self.rescan_seconds
        with self._lock:
            for name, check in self._checks.items():
                if not check.enabled or check.in_flight:
                    continue
                if check.next_due <= now:
                    check.in_flight, check.last_started = True, now
                    self._running.add(name)
                    check.next_due = now + check.interval_seconds
                    assert self._pool is not None
                    self._pool.submit(self._run, name, check.entry)
                until_next = min(until_next, check.next_due - now)
        return until_next

    # -- the pool -----------------------------------------------------------------------

    def _run(self, name: str, entry: Entry) -> None:
        try:
            if self._stopping.is_set():
                return
            if isinstance(entry, Refused):
                outcome = not_run(f"refused: {entry.reason}", time.time_ns())
            else:
                try:
                    outcome = run_check(entry, self.cgroups, self.limits, self._cancel_fd)
                except Exception as exc:  # never leave a check marked running for good
                    outcome = not_run(f"could not run: {exc!r}", time.time_ns())
            self._record(name, outcome)
        finally:
            with self._lock:
                self._running.discard(name)

    def _record(self, name: str, outcome: Outcome) -> None:
        with self._lock:
            check = self._checks.get(name)
            if check is None or self._stopping.is_set():
                return  # removed while it ran, or the agent is stopping: no result
            check.in_flight = False
            if not check.enabled:
                return
            check.outcome = outcome
            check.runs[state_name(outcome.state)] += 1
            if outcome.error is not None:
                self.errors_total += 1
        if outcome.error is not None:
            self._once.problem(f"check:{name}", f"check {name}: {outcome.error}")
        else:
            self._once.clear(f"check:{name}")
        self._wake.set()
