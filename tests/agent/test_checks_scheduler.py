"""The check scheduler with real processes: its own schedule, the directory followed while it
runs, the relay's overrides, the concurrency bound, and refusals logged."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator

import pytest

from kubensage_agent.checks.manifest import CheckDefaults
from kubensage_agent.checks.scheduler import CheckScheduler
from kubensage_api.telemetry import telemetry_pb2 as tm
from kubensage_lab.processes import eventually
from tests.conftest import require
from tests.support.checks import CheckDir

FAST = CheckDefaults(interval_seconds=1, timeout_seconds=10)


@pytest.fixture
def checks() -> Iterator[CheckDir]:
    require(os.geteuid() == 0, "checks run as root-owned files and drop to nobody")
    with CheckDir() as folder:
        yield folder


def start(checks: CheckDir, **kw: object) -> CheckScheduler:
    scheduler = CheckScheduler(checks.path, defaults=FAST, rescan_seconds=0.2, **kw)  # type: ignore[arg-type]
    scheduler.start()
    return scheduler


def by_name(scheduler: CheckScheduler) -> dict[str, tm.CheckResult]:
    return {result.name: result for result in scheduler.results()}


def test_each_state_is_reported_with_counts_and_the_interval(checks: CheckDir) -> None:
    for name, code in (("ok", 0), ("warn", 1), ("crit", 2), ("unknown", 3)):
        checks.script(name, f"echo {name}; exit {code}")
    scheduler = start(checks)
    try:
        results = eventually(
            lambda: (found := by_name(scheduler)) and len(found) == 4 and found, timeout=30
        )
    finally:
        scheduler.stop()
    assert {name: r.state for name, r in results.items()} == {
        "ok": tm.CHECK_STATE_OK,
        "warn": tm.CHECK_STATE_WARNING,
        "crit": tm.CHECK_STATE_CRITICAL,
        "unknown": tm.CHECK_STATE_UNKNOWN,
    }
    assert results["crit"].exit_code == 2 and results["crit"].output == "crit\n"
    assert results["crit"].runs_total["critical"] >= 1 and results["crit"].interval_seconds == 1
    assert scheduler.errors_total == 0


def test_checks_added_and_removed_while_running(checks: CheckDir) -> None:
    checks.script("first", "exit 0")
    checks.script(
        "slow", "touch $SCRATCH/started; while [ ! -e $SCRATCH/release ]; do sleep 0.05; done"
    )
    scheduler = start(checks)
    try:
        eventually(lambda: "first" in by_name(scheduler), timeout=30)
        eventually((checks.scratch / "started").exists, timeout=30)
        (checks.path / "slow").unlink()  # removed mid-run
        checks.script("second", "echo new; exit 1")  # added while running
        second = eventually(lambda: by_name(scheduler).get("second"), timeout=30)
        (checks.scratch / "release").touch()
        eventually(lambda: "slow" not in scheduler.running(), timeout=30)
        assert "slow" not in by_name(scheduler)
        assert second.state == tm.CHECK_STATE_WARNING and second.output == "new\n"
        (checks.path / "second").unlink()
        eventually(lambda: "second" not in by_name(scheduler), timeout=30)
        assert "first" in by_name(scheduler)
    finally:
        scheduler.stop()


def test_relay_switches_a_check_off_and_back_and_sets_its_interval(checks: CheckDir) -> None:
    checks.script("ntp", "exit 0")
    checks.script("disk", "exit 0")
    scheduler = start(checks)
    try:
        eventually(lambda: set(by_name(scheduler)) == {"ntp", "disk"}, timeout=30)
        scheduler.apply_overrides(
            [
                tm.CheckOverride(name="ntp", enabled=False),
                tm.CheckOverride(name="disk", interval_seconds=120),
            ],
            replace=True,
        )
        assert set(by_name(scheduler)) == {"disk"}
        assert by_name(scheduler)["disk"].interval_seconds == 120
        scheduler.apply_overrides([tm.CheckOverride(name="bad name!", enabled=True)], False)
        scheduler.apply_overrides([tm.CheckOverride(name="disk", interval_seconds=0.01)], False)
        assert by_name(scheduler)["disk"].interval_seconds == 120  # below the floor: ignored
        scheduler.apply_overrides([], replace=True)  # the relay no longer overrides anything
        eventually(lambda: set(by_name(scheduler)) == {"ntp", "disk"}, timeout=30)
        assert by_name(scheduler)["disk"].interval_seconds == 1
    finally:
        scheduler.stop()


def test_a_manifest_disabled_check_runs_only_when_the_relay_enables_it(checks: CheckDir) -> None:
    checks.script("opt-in", "exit 0", manifest="enabled: false\n")
    checks.script("always", "exit 0")
    scheduler = start(checks)
    try:
        eventually(lambda: "always" in by_name(scheduler), timeout=30)
        assert "opt-in" not in by_name(scheduler)
        scheduler.apply_overrides([tm.CheckOverride(name="opt-in", enabled=True)], replace=False)
        eventually(lambda: "opt-in" in by_name(scheduler), timeout=30)
    finally:
        scheduler.stop()


def test_no_more_than_the_bound_run_at_once(checks: CheckDir) -> None:
    names = [f"gate{i}" for i in range(4)]
    for name in names:
        checks.script(
            name,
            f"touch $SCRATCH/{name}; while [ ! -e $SCRATCH/open ]; do sleep 0.05; done",
        )
    scheduler = start(checks, max_concurrent=2)
    try:
        eventually(lambda: scheduler.running() == names, timeout=30)  # all due, two queued
        eventually(lambda: len(list(checks.scratch.glob("gate*"))) == 2, timeout=30)
        assert scheduler.results() == []  # the collection path never waits for them
        assert len(list(checks.scratch.glob("gate*"))) == 2
        (checks.scratch / "open").touch()
        eventually(lambda: len(by_name(scheduler)) == 4, timeout=30)
    finally:
        scheduler.stop()


def test_a_script_made_group_writable_is_refused_from_then_on(
    checks: CheckDir, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    script = checks.script("ntp", "exit 0")
    scheduler = start(checks)
    try:
        eventually(lambda: by_name(scheduler).get("ntp"), timeout=30)
        script.chmod(0o775)
        refused = eventually(
            lambda: (
                (r := by_name(scheduler).get("ntp")) and r.state == tm.CHECK_STATE_UNKNOWN and r
            ),
            timeout=30,
        )
        assert not refused.HasField("exit_code")
        assert "writable by group or others (mode 0775)" in refused.output
        assert scheduler.errors_total >= 1 and refused.runs_total["unknown"] >= 1
        line = f"check ntp: refused: {script} is writable by group or others (mode 0775)"
        eventually(lambda: line in caplog.messages, timeout=10)
        script.chmod(0o755)
        eventually(lambda: by_name(scheduler)["ntp"].state == tm.CHECK_STATE_OK, timeout=30)
    finally:
        scheduler.stop()
    assert caplog.messages.count(line) == 1  # once, not every run


def test_stop_kills_checks_in_flight(checks: CheckDir) -> None:
    checks.script("hang", "echo $$ > $SCRATCH/pid; exec sleep 1000", manifest="timeout: 600\n")
    scheduler = start(checks)
    eventually((checks.scratch / "pid").exists, timeout=30)
    pid = int(eventually(lambda: (checks.scratch / "pid").read_text().strip(), timeout=10))
    scheduler.stop()
    assert not os.path.exists(f"/proc/{pid}")
