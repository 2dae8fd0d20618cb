"""A statfs that never returns, for real: a FUSE mount whose daemon holds FUSE_STATFS
unanswered, mounted in a private mount namespace so nothing else on the machine sees it."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import require

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def scenario(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    require(os.geteuid() == 0, "mounting FUSE needs root")
    require(Path("/dev/fuse").exists(), "the kernel offers no /dev/fuse")
    require(shutil.which("unshare") is not None, "unshare (util-linux) runs the scenario")
    workdir = tmp_path_factory.mktemp("fuse")
    result = subprocess.run(
        [
            "unshare",
            "--mount",
            "--propagation",
            "private",
            "--pid",
            "--fork",
            "--mount-proc",
            sys.executable,
            "-m",
            "tests.support.statfs_fuse_scenario",
            str(workdir),
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        # a cycle that waited for the hung call would never end: the bound fails the test
        timeout=180,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return dict(json.loads(result.stdout))


def test_the_hung_mount_costs_only_itself(scenario: dict[str, Any]) -> None:
    mountpoint = scenario["mountpoint"]
    assert mountpoint not in scenario["before_mount"]["filesystems"]
    stuck = scenario["stuck"]
    hung = stuck["filesystems"][mountpoint]
    assert (hung["device"], hung["fstype"]) == ("kubensage-hang", "fuse")
    assert hung["device_error"] and hung["size_bytes"] is None
    # the cycle returned while the kernel still waited for the daemon's answer
    assert stuck["held"] == 1 and stuck["outstanding"] == [mountpoint]
    others = {m: fs for m, fs in stuck["filesystems"].items() if m != mountpoint}
    assert others["/"]["size_bytes"] > 0
    assert all(fs["size_bytes"] for fs in others.values() if not fs["device_error"])
    assert "did not answer" in stuck["logged"][f"statfs:{mountpoint}"]


def test_a_hung_mount_is_not_asked_again_until_its_call_returns(
    scenario: dict[str, Any],
) -> None:
    mountpoint = scenario["mountpoint"]
    again = scenario["still_stuck"]
    assert again["statfs_requests"] == 1 and again["outstanding"] == [mountpoint]
    assert again["filesystems"][mountpoint]["device_error"]
    assert again["errors"]["filesystem"] > scenario["stuck"]["errors"]["filesystem"]


def test_the_mount_is_collected_again_once_its_call_returns(scenario: dict[str, Any]) -> None:
    mountpoint = scenario["mountpoint"]
    answered = scenario["answered"]["filesystems"][mountpoint]
    # the daemon's answer: 1000 blocks of 4096 bytes, 100 inodes
    assert not answered["device_error"]
    assert (answered["size_bytes"], answered["files"]) == (4096 * 1000, 100)
    assert f"statfs:{mountpoint}" not in scenario["answered"]["logged"]


def test_an_aborted_connection_ends_the_hang(scenario: dict[str, Any]) -> None:
    mountpoint = scenario["mountpoint"]
    assert scenario["stuck_again"]["outstanding"] == [mountpoint]
    aborted = scenario["aborted"]
    # asked again and answered at once: ENOTCONN, an error of that mount only
    assert aborted["outstanding"] == [] and aborted["statfs_requests"] == 3
    assert aborted["filesystems"][mountpoint]["device_error"]
    assert aborted["errors"]["filesystem"] > scenario["stuck_again"]["errors"]["filesystem"]
    assert mountpoint not in scenario["unmounted"]["filesystems"]
