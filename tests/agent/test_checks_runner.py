"""One check run with real processes: states, output bound, timeout, flood, fork bomb, sandbox."""

from __future__ import annotations

import os
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from kubensage_agent.checks.manifest import CheckDefaults, CheckSpec, parse_manifest
from kubensage_agent.checks.runner import OUTPUT_LIMIT, Outcome, bounded_text, run_check
from kubensage_agent.checks.sandbox import Limits, PidsCgroups, RunCgroup, account_tasks
from kubensage_api.telemetry import telemetry_pb2 as tm
from kubensage_lab.processes import eventually
from tests.conftest import require
from tests.support.checks import CheckDir


@pytest.fixture
def checks() -> Iterator[CheckDir]:
    require(os.geteuid() == 0, "checks run as root-owned files and drop to nobody")
    with CheckDir() as folder:
        yield folder


@pytest.fixture(params=["cgroup", "no-cgroup"])
def cgroups(request: pytest.FixtureRequest) -> Iterator[PidsCgroups]:
    found = PidsCgroups(None) if request.param == "no-cgroup" else PidsCgroups.detect()
    require(request.param == "no-cgroup" or found.parent is not None, "a writable pids cgroup")
    yield found
    found.close()


def spec(checks: CheckDir, name: str, manifest: str = "") -> CheckSpec:
    return parse_manifest(manifest or None, name, checks.path / name, CheckDefaults())


def run(checks: CheckDir, name: str, body: str, manifest: str = "", **kw: object) -> Outcome:
    checks.script(name, body)
    cgroups = kw.pop("cgroups", PidsCgroups(None))
    assert isinstance(cgroups, PidsCgroups)
    return run_check(spec(checks, name, manifest), cgroups, **kw)  # type: ignore[arg-type]


def alive(pid: int) -> bool:
    """True while the process exists and is not a zombie."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, IndexError):
        return False
    return state != "Z"


@pytest.mark.parametrize(
    ("code", "state"),
    [
        (0, tm.CHECK_STATE_OK),
        (1, tm.CHECK_STATE_WARNING),
        (2, tm.CHECK_STATE_CRITICAL),
        (3, tm.CHECK_STATE_UNKNOWN),
        (42, tm.CHECK_STATE_UNKNOWN),
    ],
)
def test_exit_codes_follow_the_nagios_convention(checks: CheckDir, code: int, state: int) -> None:
    outcome = run(checks, "nagios", f"echo 'status {code}'; echo 'to stderr' >&2; exit {code}")
    assert (outcome.state, outcome.exit_code, outcome.timed_out) == (state, code, False)
    assert outcome.output == f"status {code}\nto stderr\n"
    assert outcome.error is None and outcome.ran_at_unix_nanos > 0


def test_runs_as_nobody_with_path_only_no_stdin_cwd_root_and_limits(checks: CheckDir) -> None:
    leaked = [os.open("/dev/null", os.O_RDONLY) for _ in range(80)]  # beyond the fd rlimit
    nobody_tasks = account_tasks(65534, Path("/proc"))
    try:
        outcome = run(
            checks,
            "sandbox",
            "id -un; pwd; env | sort; ls /proc/self/fd | wc -l; ulimit -n; ulimit -t; "
            "ulimit -p; ulimit -v; ulimit -c; read line && echo got-stdin; echo end",
            "timeout: 4",
        )
    finally:
        for fd in leaked:
            os.close(fd)
    lines = outcome.output.splitlines()
    assert lines[0] == "nobody" and lines[1] == "/"
    env = [line for line in lines[2:] if "=" in line and not line.startswith("PWD=")]
    assert env == ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"]
    numbers = [line for line in lines if line.isdigit()]
    # fds: 0, 1, 2 and the one ls opens to list them; nothing of the agent's
    processes = str(nobody_tasks + 64)  # what the account had, plus this run's budget
    assert numbers == ["4", "64", "5", processes, str(512 * 1024), "0"]
    assert "got-stdin" not in lines and lines[-1] == "end"
    assert outcome.state == tm.CHECK_STATE_OK


def test_root_only_when_the_manifest_says_so(checks: CheckDir) -> None:
    assert run(checks, "who", "id -u", "user: root").output == "0\n"
    assert run(checks, "who", "id -u").output == f"{65534}\n"


def test_output_keeps_the_first_4_kib_and_the_real_exit_code(checks: CheckDir) -> None:
    outcome = run(
        checks, "chatty", "i=0; while [ $i -lt 2000 ]; do echo line$i; i=$((i+1)); done; exit 2"
    )
    expected = "".join(f"line{i}\n" for i in range(2000)).encode()[:OUTPUT_LIMIT].decode()
    assert outcome.output == expected
    assert (outcome.state, outcome.exit_code) == (tm.CHECK_STATE_CRITICAL, 2)


def test_a_100_mb_flood_is_cut_killed_and_unknown(checks: CheckDir, cgroups: PidsCgroups) -> None:
    outcome = run(
        checks,
        "flood",
        "echo $$ > $SCRATCH/pid; head -c 100000000 /dev/zero | tr '\\0' x; exit 0",
        "timeout: 30",
        cgroups=cgroups,
    )
    pid = int((checks.scratch / "pid").read_text())
    assert outcome.state == tm.CHECK_STATE_UNKNOWN and outcome.exit_code is None
    assert len(outcome.output.encode()) <= OUTPUT_LIMIT
    assert outcome.output.startswith("x" * 1000) and "check killed" in outcome.output
    assert not outcome.timed_out and not alive(pid)


def test_timeout_kills_the_whole_process_group(checks: CheckDir, cgroups: PidsCgroups) -> None:
    outcome = run(
        checks,
        "hang",
        "echo started; sleep 1000 & echo $! > $SCRATCH/child; echo $$ > $SCRATCH/leader; "
        "sleep 1000",
        "timeout: 1",
        cgroups=cgroups,
    )
    assert outcome.timed_out and outcome.exit_code is None
    assert outcome.state == tm.CHECK_STATE_UNKNOWN
    assert outcome.output.startswith("started\n") and "1s timeout" in outcome.output
    for marker in ("leader", "child"):
        assert not alive(int((checks.scratch / marker).read_text()))


def test_what_a_finished_check_leaves_behind_is_killed(checks: CheckDir) -> None:
    outcome = run(checks, "daemon", "sleep 1000 & echo $! > $SCRATCH/child; echo bye; exit 1")
    assert (outcome.state, outcome.exit_code, outcome.output) == (
        tm.CHECK_STATE_WARNING,
        1,
        "bye\n",
    )
    assert not alive(int((checks.scratch / "child").read_text()))


class _Watched(PidsCgroups):
    """Records each run's cgroup so the test can read pids.peak while the run lasts."""

    def __init__(self, parent: Path | None, max_pids: int) -> None:
        super().__init__(parent, max_pids)
        self.runs: list[RunCgroup] = []

    def create(self, name: str) -> RunCgroup | None:
        made = super().create(name)
        if made is not None:
            self.runs.append(made)
        return made


def limit_hits(run: RunCgroup) -> int:
    """How often the run's processes were refused a fork by pids.max (`max N` in pids.events)."""
    try:
        return int((run.path / "pids.events").read_text().split()[1])
    except (OSError, IndexError, ValueError):
        return 0


def test_a_fork_bomb_is_held_by_the_pids_cgroup_and_costs_only_its_result(
    checks: CheckDir,
) -> None:
    detected = PidsCgroups.detect()
    require(detected.parent is not None, "a writable pids cgroup hierarchy")
    cgroups = _Watched(detected.parent, max_pids=16)
    limits = Limits(max_tasks=16)  # the same budget as the cgroup, for the account too
    checks.script(
        "neighbour",
        "touch $SCRATCH/waiting; while [ ! -e $SCRATCH/go ]; do sleep 0.05; done; echo fine",
    )
    checks.script("bomb", "bomb() { bomb | bomb & }; bomb; sleep 1000", shell="/bin/bash")
    outcomes: dict[str, Outcome] = {}

    def start(name: str, manifest: str) -> threading.Thread:
        thread = threading.Thread(
            target=lambda: outcomes.update(
                {name: run_check(spec(checks, name, manifest), cgroups, limits)}
            )
        )
        thread.start()
        return thread

    neighbour = start("neighbour", "timeout: 60")  # started first, forks all along
    try:
        eventually((checks.scratch / "waiting").exists, timeout=30, every=0.02)
        bomb = start("bomb", "timeout: 4")
        eventually(lambda: len(cgroups.runs) == 2, timeout=30, every=0.02)
        eventually(lambda: limit_hits(cgroups.runs[1]) > 0, timeout=30, every=0.02)
        (checks.scratch / "go").touch()  # the bomb is at its limit: the neighbour forks on
        bomb.join(60)
    finally:
        (checks.scratch / "go").touch()
        neighbour.join(60)
        cgroups.close()
    assert outcomes["bomb"].timed_out and outcomes["bomb"].state == tm.CHECK_STATE_UNKNOWN
    assert (outcomes["neighbour"].state, outcomes["neighbour"].output) == (
        tm.CHECK_STATE_OK,
        "fine\n",
    )
    assert not any(run.path.exists() for run in cgroups.runs)


def test_a_fork_bomb_without_cgroup_is_held_by_rlimit_nproc(checks: CheckDir) -> None:
    checks.script(
        "bomb",
        "echo $$ > $SCRATCH/leader; bomb() { bomb | bomb & }; bomb; sleep 1000",
        shell="/bin/bash",
    )
    outcome = run_check(spec(checks, "bomb", "timeout: 2"), PidsCgroups(None), Limits(max_tasks=16))
    assert outcome.timed_out and "Resource temporarily unavailable" in outcome.output
    assert not alive(int((checks.scratch / "leader").read_text()))
    after = run(checks, "after", "echo fine", cgroups=PidsCgroups(None))
    assert after.state == tm.CHECK_STATE_OK


def test_checks_still_start_when_the_account_is_busy_elsewhere_on_the_node(
    checks: CheckDir,
) -> None:
    """Containers often run as nobody: 300 of its threads must not stop a check starting."""
    busy = subprocess.Popen(
        [
            "python3",
            "-c",
            "import threading, time\n"
            "for _ in range(300): threading.Thread(target=time.sleep, args=(120,), daemon=True)"
            ".start()\n"
            "print('ready', flush=True); time.sleep(120)",
        ],
        user=65534,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert busy.stdout is not None and busy.stdout.readline() == "ready\n"
        assert account_tasks(65534, Path("/proc")) > 300
        outcome = run(checks, "busy", "echo fine")
        assert (outcome.state, outcome.output) == (tm.CHECK_STATE_OK, "fine\n")
    finally:
        busy.kill()
        busy.wait(10)


def test_cpu_time_limit_follows_the_timeout(checks: CheckDir) -> None:
    outcome = run(
        checks,
        "cpu",
        "exec python3 -c 'import resource; print(resource.getrlimit(resource.RLIMIT_CPU))'",
        "timeout: 2.5",
    )
    assert outcome.output == "(4, 5)\n"  # SIGXCPU past ceil(timeout) + 1 s, SIGKILL a second later


def test_refused_and_unstartable_checks_are_unknown_errors(checks: CheckDir) -> None:
    checks.script("writable", "exit 0", mode=0o775)
    refused = run_check(spec(checks, "writable"), PidsCgroups(None))
    assert refused.state == tm.CHECK_STATE_UNKNOWN and refused.exit_code is None
    assert refused.error is not None and "writable by group or others" in refused.error
    assert refused.output == refused.error
    (checks.path / "noshebang").write_bytes(b"\x00\x01garbage")
    (checks.path / "noshebang").chmod(0o755)
    broken = run_check(spec(checks, "noshebang"), PidsCgroups(None))
    assert broken.error is not None and "could not start" in broken.error


def test_removed_before_it_runs_is_refused_not_raised(checks: CheckDir) -> None:
    checks.script("gone", "exit 0")
    prepared = spec(checks, "gone")
    (checks.path / "gone").unlink()
    outcome = run_check(prepared, PidsCgroups(None))
    assert outcome.error is not None and "does not exist" in outcome.error


def test_bounded_text_never_exceeds_the_limit_even_with_replacement_characters() -> None:
    assert bounded_text(b"\xff" * 5000, "note").encode().__len__() <= OUTPUT_LIMIT
    assert bounded_text(b"abc", "cut") == "abc\n[cut]"
    assert bounded_text(b"abc") == "abc"


def test_kernels_without_pidfd_still_see_exits_and_timeouts(
    checks: CheckDir, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_pidfd(pid: int, flags: int = 0) -> int:
        raise OSError(38, "Function not implemented")  # ENOSYS, as before Linux 5.3

    monkeypatch.setattr(os, "pidfd_open", no_pidfd)
    done = run(checks, "daemon", "sleep 1000 & echo $! > $SCRATCH/child; echo bye; exit 2")
    assert (done.state, done.exit_code, done.output) == (tm.CHECK_STATE_CRITICAL, 2, "bye\n")
    assert not alive(int((checks.scratch / "child").read_text()))
    hang = run(checks, "hang", "sleep 1000", "timeout: 1")
    assert hang.timed_out and hang.state == tm.CHECK_STATE_UNKNOWN
