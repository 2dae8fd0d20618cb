"""Runtime discovery: explicit wins, fixed order, only answering sockets count.

Paths are resolved inside the host root.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from kubensage_agent.cri.discovery import DiscoveryError, discover, resolve_in_root
from kubensage_agent.hostfs import HostPaths
from tests.support.fake_cri import FakeContainer, FakeCriServer, FakeRuntime

AGENT = [sys.executable, "-m", "kubensage_agent"]


@pytest.fixture
def root() -> Iterator[Path]:
    path = Path(f"/tmp/ksroot-{os.getpid()}-{time.monotonic_ns()}")
    (path / "run").mkdir(parents=True)
    (path / "var").mkdir()
    (path / "var" / "run").symlink_to("/run")  # as on real hosts: absolute target
    yield path
    shutil.rmtree(path, ignore_errors=True)


def test_absolute_symlinks_resolve_inside_the_host_root(root: Path) -> None:
    resolved = resolve_in_root(HostPaths(root), "/var/run/crio/crio.sock")
    assert resolved == root / "run" / "crio" / "crio.sock"


def test_nothing_found_lists_every_path_and_why(root: Path) -> None:
    (root / "run" / "containerd").mkdir()
    (root / "run" / "containerd" / "containerd.sock").write_text("not a socket")
    dead = root / "run" / "crio" / "crio.sock"
    dead.parent.mkdir()
    stale = socket.socket(socket.AF_UNIX)
    stale.bind(str(dead))  # a socket nobody listens on, as after a runtime crash
    stale.close()
    with pytest.raises(DiscoveryError) as caught:
        discover(HostPaths(root), None, timeout=1)
    outcomes = {a.endpoint: a.outcome for a in caught.value.attempts}
    assert outcomes[f"unix://{root}/run/containerd/containerd.sock"] == "exists but is not a socket"
    assert outcomes[f"unix://{root}/run/k3s/containerd/containerd.sock"] == "not present"
    crio = f"unix://{root}/var/run/crio/crio.sock (-> {root}/run/crio/crio.sock)"
    assert outcomes[crio].startswith("no answer to runtime.v1 Version")
    assert len(caught.value.attempts) == 5  # /var/run/containerd is the same socket as /run's


def test_first_answering_socket_in_order_wins(root: Path) -> None:
    crio = FakeCriServer(root / "run" / "crio" / "crio.sock", FakeRuntime(name="cri-o"))
    dockerd = FakeCriServer(root / "run" / "cri-dockerd.sock", FakeRuntime(name="docker"))
    with crio, dockerd:
        found = discover(HostPaths(root), None, timeout=2)
    assert found.version.runtime_name == "cri-o"
    assert found.endpoint == f"unix://{root}/run/crio/crio.sock"


def test_explicit_socket_wins_over_probe_order(root: Path) -> None:
    probed = FakeCriServer(root / "run" / "containerd" / "containerd.sock", FakeRuntime(name="a"))
    explicit = FakeCriServer(root / "custom.sock", FakeRuntime(name="b"))
    with probed, explicit:
        found = discover(HostPaths(root), f"unix://{root}/custom.sock", timeout=2)
    assert found.version.runtime_name == "b"


def test_v1alpha2_only_runtime_gets_a_clear_error(root: Path) -> None:
    path = root / "run" / "containerd" / "containerd.sock"
    with (
        FakeCriServer(path, FakeRuntime(), v1alpha2_only=True),
        pytest.raises(DiscoveryError) as caught,
    ):
        discover(HostPaths(root), None, timeout=2)
    assert "only speaks CRI runtime.v1alpha2" in str(caught.value)


def test_detect_command_exits_nonzero_and_lists_attempts(root: Path) -> None:
    result = subprocess.run(
        [*AGENT, "detect", "--host-root", str(root), "--cri-timeout", "1"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 1
    assert "no CRI runtime answered" in result.stderr
    for path in (
        "run/containerd/containerd.sock",
        "run/k3s/containerd/containerd.sock",
        "var/run/crio/crio.sock",
        "var/run/cri-dockerd.sock",
        "var/run/dockershim.sock",
    ):
        assert f"{root}/{path}" in result.stderr


def test_detect_command_prints_runtime(root: Path) -> None:
    with FakeCriServer(
        root / "run" / "crio" / "crio.sock", FakeRuntime(name="cri-o", version="1.29.1")
    ):
        result = subprocess.run(
            [*AGENT, "detect", "--host-root", str(root)],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    assert result.returncode == 0, result.stderr
    assert f"endpoint: unix://{root}/run/crio/crio.sock" in result.stdout
    assert "runtime: cri-o 1.29.1" in result.stdout
    assert "cri_api_version: v1" in result.stdout


def test_collect_json_uses_proto_field_names_and_env_config(root: Path) -> None:
    runtime = FakeRuntime(name="containerd")
    runtime.add_pod("s1", "web")
    runtime.containers = [FakeContainer("c1", "s1", "app", usage_ns=10**9)]
    with FakeCriServer(root / "cri.sock", runtime) as server:
        result = subprocess.run(
            [*AGENT, "collect", "--format", "json", "--sample-interval", "0"],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
            env={**os.environ, "KUBENSAGE_CRI_SOCKET": server.endpoint, "NODE_NAME": "node-x"},
        )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["node"]["name"] == "node-x"
    assert report["runtime"]["name"] == "containerd"
    pod = report["pods"][0]
    assert pod["name"] == "web"
    assert pod["containers"][0]["cpu"]["usage_seconds_total"] == 1.0
    assert "collected_at_unix_nanos" in report


def test_flag_beats_env_beats_config_file(root: Path, tmp_path: Path) -> None:
    config = tmp_path / "agent.yaml"
    config.write_text("node-name: from-file\ncri-socket: unix:///nonexistent.sock\n")
    base = [
        *AGENT,
        "collect",
        "--config",
        str(config),
        "--sample-interval",
        "0",
        "--disable-collectors",
        "addresses",
    ]
    env = {k: v for k, v in os.environ.items() if not k.startswith("KUBENSAGE_")}

    def node_name(extra: list[str], extra_env: dict[str, str]) -> str:
        result = subprocess.run(
            [*base, *extra],
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
            env={**env, **extra_env},
        )
        return str(json.loads(result.stdout)["node"]["name"])

    assert node_name([], {}) == "from-file"
    assert node_name([], {"KUBENSAGE_NODE_NAME": "from-env"}) == "from-env"
    assert (
        node_name(["--node-name", "from-flag"], {"KUBENSAGE_NODE_NAME": "from-env"}) == "from-flag"
    )


def test_unknown_config_key_is_a_clear_error(tmp_path: Path) -> None:
    config = tmp_path / "agent.yaml"
    config.write_text("relay_adress: typo\n")
    result = subprocess.run(
        [*AGENT, "collect", "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    assert "unknown keys" in result.stderr and "relay_adress" in result.stderr
