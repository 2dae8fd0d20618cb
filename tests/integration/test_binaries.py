"""`make build`'s PyInstaller bundles, built and run: version info, collect, relay+agent,
the advisor's one-shot and its leader election."""

from __future__ import annotations

import importlib.util
import json
import platform
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from kubensage_common._version import VERSION
from kubensage_lab.processes import RelayProcess, Service, eventually, free_port, http_get
from tests.conftest import require
from tests.support.fake_kube import FakeKubeApi

REPO = Path(__file__).resolve().parent.parent.parent
ARCH = {"x86_64": "amd64", "aarch64": "arm64"}.get(platform.machine(), platform.machine())


@pytest.fixture(scope="module")
def binaries() -> Iterator[dict[str, Path]]:
    require(
        importlib.util.find_spec("PyInstaller") is not None,
        "PyInstaller (dev extra) builds the binaries",
    )
    result = subprocess.run(
        ["scripts/build.sh", sys.executable, VERSION, ARCH],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert f"linux-{ARCH} ok" in result.stdout
    yield {
        program: REPO
        / "dist"
        / f"kubensage-{program}-{VERSION}-linux-{ARCH}"
        / f"kubensage-{program}"
        for program in ("agent", "relay", "advisor")
    }


def test_version_names_version_commit_and_build_date(binaries: dict[str, Path]) -> None:
    for program, path in binaries.items():
        out = subprocess.run(
            [str(path), "--version"], capture_output=True, text=True, timeout=60, check=True
        ).stdout
        match = re.fullmatch(
            rf"kubensage-{program} {re.escape(VERSION)} \(commit (\S+), "
            r"built (\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ)\)\n",
            out,
        )
        assert match, out
        assert match.group(1) != "unknown"
    assert (REPO / "dist" / f"kubensage-agent-{VERSION}-linux-{ARCH}.tar.gz").exists()


def test_binary_agent_collects_this_machine(binaries: dict[str, Path], tmp_path: Path) -> None:
    result = subprocess.run(
        [
            str(binaries["agent"]),
            "collect",
            "--format",
            "json",
            "--sample-interval",
            "0",
            "--cri-socket",
            f"unix://{tmp_path}/none.sock",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["node"]["cpu_seconds_by_mode"]["user"] > 0
    assert report["node"]["memory"]["total_bytes"]


def test_binary_agent_reports_to_binary_relay(binaries: dict[str, Path], tmp_path: Path) -> None:
    relay = RelayProcess(tmp_path, "relay", command=[str(binaries["relay"])])
    grpc_port = relay.grpc
    agent = Service(
        "agent",
        [
            str(binaries["agent"]),
            "run",
            "--relay-address",
            f"127.0.0.1:{grpc_port}",
            "--interval",
            "1",
            "--node-name",
            "binary-node",
            "--state-dir",
            str(tmp_path / "s"),
            "--cri-socket",
            f"unix://{tmp_path}/none.sock",
        ],
        tmp_path,
    )
    try:
        relay.start()
        agent.start()
        body = eventually(
            lambda: next(
                (
                    b
                    for b in [http_get(relay.metrics_url)[1]]
                    if 'kubensage_node_load1{node="binary-node"}' in b
                ),
                "",
            ),
            timeout=30,
        )
        assert re.search(rf'kubensage_node_info\{{[^}}]*agent_version="{re.escape(VERSION)}"', body)
        assert agent.stop() == 0
    finally:
        agent.stop()
        relay.stop()


def test_binary_advisor_errs_clearly_and_leads_its_lease(
    binaries: dict[str, Path], tmp_path: Path
) -> None:
    nowhere = f"http://127.0.0.1:{free_port()}"
    result = subprocess.run(
        [str(binaries["advisor"]), "recommend", "--prometheus-url", nowhere],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 1 and "cannot reach Prometheus" in result.stderr, result.stderr
    api = FakeKubeApi().start()
    port = free_port()
    advisor = Service(
        "advisor",
        [
            str(binaries["advisor"]),
            "serve",
            "--prometheus-url",
            nowhere,
            "--metrics-address",
            f"127.0.0.1:{port}",
            "--kubeconfig",
            str(api.write_kubeconfig(tmp_path / "kubeconfig")),
            "--lease-namespace",
            "kubensage",
        ],
        tmp_path,
    )
    try:
        advisor.start().wait_http(f"http://127.0.0.1:{port}/readyz")
        eventually(
            lambda: (
                "kubensage_advisor_leader 1.0" in http_get(f"http://127.0.0.1:{port}/metrics")[1]
            ),
            timeout=60,
        )
        lease = api.lease("kubensage", "kubensage-advisor")
        assert lease is not None and lease["spec"]["holderIdentity"]
        assert advisor.stop() == 0
    finally:
        advisor.stop()
        api.stop()
