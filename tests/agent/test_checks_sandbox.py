"""Where a check's pids cgroup goes: found from /proc/self/mounts and /proc/self/cgroup."""

from __future__ import annotations

import os
from pathlib import Path

from kubensage_agent.checks.sandbox import PARENT_PREFIX, PidsCgroups, pids_hierarchy
from kubensage_agent.parsers.cgroup import process_cgroup

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
HYBRID = FIXTURES / "debian12-hybrid/proc"
VARIANTS = FIXTURES / "variants"


def test_the_v1_pids_mount_wins_on_a_hybrid_host() -> None:
    assert pids_hierarchy((HYBRID / "mounts-cgroup").read_text()) == ("/sys/fs/cgroup/pids", 1)
    assert process_cgroup((HYBRID / "self-cgroup").read_text(), "pids") == "/"
    assert process_cgroup((HYBRID / "self-cgroup").read_text(), "memory") == (
        "/process_api/effa7ce6255cdc2cb42d49ed2b0822d9"
    )


def test_a_pure_v2_host_offers_its_cgroup2_mount() -> None:
    assert pids_hierarchy((VARIANTS / "cgroup-v2.mounts").read_text()) == ("/sys/fs/cgroup", 2)
    assert process_cgroup((VARIANTS / "cgroup-v2-pod.cgroup").read_text(), "pids") is None
    assert process_cgroup((VARIANTS / "cgroup-v2-pod.cgroup").read_text()).startswith("/")


def test_joined_controllers_and_missing_pids_mounts() -> None:
    cgroup = (VARIANTS / "cgroup-v1-only.cgroup").read_text()
    assert process_cgroup(cgroup, "pids") == "/kubepods/besteffort/pod42/abc"
    assert process_cgroup(cgroup, "cpuacct") == "/kubepods/besteffort/pod42/abc"
    assert pids_hierarchy((VARIANTS / "cgroup-v1-only.mounts").read_text()) is None
    assert pids_hierarchy("garbage\n\n") is None


def test_detect_nests_the_runs_under_the_agents_own_cgroup(tmp_path: Path) -> None:
    hierarchy = tmp_path / "pids"
    (hierarchy / "system.slice/agent.service").mkdir(parents=True)
    proc = tmp_path / "proc"
    (proc / "self").mkdir(parents=True)
    (proc / "self/mounts").write_text(f"cgroup {hierarchy} cgroup rw,pids 0 0\n")
    (proc / "self/cgroup").write_text("3:pids:/system.slice/agent.service\n0::/\n")
    home = hierarchy / "system.slice/agent.service"
    (home / f"{PARENT_PREFIX}999999999").mkdir()  # left by an agent that died
    (home / f"{PARENT_PREFIX}{os.getpid() + 0}-busy").mkdir()  # not an agent's: kept
    found = PidsCgroups.detect(max_pids=8, proc=proc)
    assert found.parent == home / f"{PARENT_PREFIX}{os.getpid()}"
    assert found.parent.is_dir() and found.max_pids == 8
    assert not (home / f"{PARENT_PREFIX}999999999").exists()
    assert (home / f"{PARENT_PREFIX}{os.getpid()}-busy").exists()
    found.close()
    assert not found.parent.exists()


def test_no_pids_cgroup_where_the_hierarchy_is_not_writable(tmp_path: Path) -> None:
    proc = tmp_path / "proc"
    (proc / "self").mkdir(parents=True)
    (proc / "self/mounts").write_text("cgroup /nonexistent/pids cgroup rw,pids 0 0\n")
    (proc / "self/cgroup").write_text("3:pids:/\n")
    assert PidsCgroups.detect(proc=proc).parent is None
    assert PidsCgroups.detect(proc=tmp_path / "no-proc").parent is None
    assert PidsCgroups(None).create("ntp") is None
