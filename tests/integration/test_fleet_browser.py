"""The fleet page in a real browser: headless Chromium loads it from a relay fed by real
agent processes (and one raw report full of markup), the DOM holds the rows, every agent
string is text, and a screenshot is taken."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from kubensage_api.telemetry import telemetry_pb2 as tm
from kubensage_lab.processes import RelayProcess, agent_service, eventually, http_get
from tests.conftest import require
from tests.support.checks import CheckDir
from tests.support.fake_cri import FakeContainer, FakeCriServer, FakeRuntime
from tests.support.html import PAGE_TAGS, Page
from tests.support.load import LoadResult, stream_reports
from tests.support.reports import check, container, pod, report

MARKUP = '<script>document.title="pwned"</script><img src=x onerror="document.title=1">'
EVIL_NODE = f"evil-{MARKUP}"  # not a Kubernetes name: a relay may refuse it at hello
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)


def chromium(workdir: Path, *args: str) -> str:
    binary = shutil.which("chromium")
    assert binary is not None
    result = subprocess.run(
        [binary, *CHROMIUM_FLAGS, f"--user-data-dir={workdir / 'chromium'}", *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout


def feed_raw_report(address: str) -> LoadResult:
    """A report only a hand-made client sends: markup in every string an agent controls."""
    raw = report(
        EVIL_NODE,
        agent_id="raw-agent",
        pods=[pod(MARKUP, namespace=MARKUP, containers=[container(MARKUP, "c1")])],
    )
    raw.agent_version = MARKUP
    raw.runtime.version = MARKUP
    raw.checks.append(check("raw-check", tm.CHECK_STATE_CRITICAL, 2, MARKUP))
    result = LoadResult()
    hello = tm.Hello(agent_id="raw-agent", node_name=EVIL_NODE, agent_version=MARKUP)
    try:
        asyncio.run(stream_reports(address, hello, [raw], result))
    except Exception as exc:  # a relay that refuses the name at hello ends the stream
        result.errors.append(repr(exc))
    return result


@pytest.fixture
def fleet(tmp_path: Path) -> Iterator[tuple[RelayProcess, LoadResult]]:
    require(shutil.which("chromium") is not None, "chromium (Debian package) for the page test")
    require(os.geteuid() == 0, "check scripts are root-owned")
    runtime = FakeRuntime(name="containerd", version=f"1.7<b>{MARKUP}</b>")
    runtime.add_pod("sb1", f"web-{MARKUP}", "shop")
    runtime.containers.append(FakeContainer("c1", "sb1", "app"))
    checks = CheckDir()
    checks.script("disk", f"echo '{MARKUP} disk read-only'; exit 2")
    checks.script("ntp", "echo synced; exit 0")
    with (
        FakeCriServer(tmp_path / "cri.sock", runtime) as cri,
        RelayProcess(
            tmp_path, "relay", "--no-kube-enrichment", "--node-grace-period", "60"
        ) as relay,
    ):
        agents = [
            agent_service(
                tmp_path,
                name,
                relay.address,
                "--cri-socket",
                cri.endpoint,
                "--interval",
                "2",
                "--checks-dir",
                str(checks.path) if name == "fleet-a" else "",
                "--checks-interval",
                "2",
            ).start()
            for name in ("fleet-a", "fleet-b")
        ]
        try:
            yield relay, feed_raw_report(relay.address)
        finally:
            for agent in agents:
                agent.stop()
            checks.cleanup()


def agents(relay: RelayProcess) -> dict[str, dict[str, Any]]:
    status, body = http_get(f"http://127.0.0.1:{relay.http}/api/v1/agents")
    assert status == 200
    return {agent["node"]: agent for agent in json.loads(body)["agents"]}


def test_chromium_shows_every_agent_as_text(
    fleet: tuple[RelayProcess, LoadResult], tmp_path: Path
) -> None:
    relay, raw = fleet
    listed = eventually(
        lambda: (
            (found := agents(relay))
            and {"fleet-a", "fleet-b"} <= set(found)
            and found["fleet-a"]["failing_checks"]
            and found["fleet-a"]["checks"] == 2  # the two checks may report a cycle apart
            and found
        ),
        timeout=90,
    )
    assert listed["fleet-a"]["checks"] == 2 and listed["fleet-b"]["checks"] == 0
    assert listed["fleet-a"]["containers"] == 1 and listed["fleet-a"]["connected"]
    raw_accepted = EVIL_NODE in listed
    print(f"raw report with a markup node name accepted: {raw_accepted} ({raw.errors[:1]})")

    url = f"http://127.0.0.1:{relay.http}/?sort=node"
    dom = chromium(tmp_path, "--dump-dom", url)
    page = Page(dom)
    assert page.document_title == "kubensage relay: fleet"  # no injected script ran
    assert page.tags <= PAGE_TAGS, page.tags - PAGE_TAGS  # no injected element exists
    expected = sorted(["fleet-a", "fleet-b", *([EVIL_NODE] if raw_accepted else [])])
    assert page.rows == expected
    text = "".join(page.text)
    assert f"containerd 1.7<b>{MARKUP}</b>" in text  # the agents' runtime version, as text
    assert "disk (critical)" in text
    assert any(title.startswith(f"{MARKUP} disk read-only") for title in page.titles)
    if raw_accepted:
        assert EVIL_NODE in text and "raw-check (critical)" in text
        assert sum(MARKUP in part for part in page.text) >= 3  # node, agent, runtime version

    screenshot = tmp_path / "fleet.png"
    chromium(tmp_path, f"--screenshot={screenshot}", "--window-size=1400,900", url)
    data = screenshot.read_bytes()
    assert data.startswith(b"\x89PNG\r\n\x1a\n") and len(data) > 20_000
    keep = os.environ.get("KUBENSAGE_SCREENSHOT_DIR")
    if keep:
        shutil.copy(screenshot, Path(keep) / "fleet.png")
