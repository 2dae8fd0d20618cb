"""`make demo` as a newcomer runs it: started with stdin closed, the printed URLs work,
the listed queries show what the README says, the OOM alert fires, and Ctrl-C leaves
nothing behind (processes, mounts, cgroups, temp dirs)."""

from __future__ import annotations

import json
import os
import re
import select
import shutil
import signal
import subprocess
import sys
import time
import urllib.parse
from pathlib import Path
from typing import Any

import psutil
import pytest

from kubensage_lab.containerd import binaries_present
from kubensage_lab.demo import QUERIES
from kubensage_lab.processes import eventually, http_get
from kubensage_lab.stack import NODE
from tests.conftest import require

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parent.parent.parent
START_SECONDS = 240


def read_until_queries(process: subprocess.Popen[str]) -> str:
    """stdout up to the last printed query URL, bounded in time.

    Read from the pipe's descriptor, not the text wrapper: a buffered readline would keep
    the rest of a multi-line write where select() cannot see it."""
    assert process.stdout is not None
    descriptor = process.stdout.fileno()
    received = b""
    deadline = time.monotonic() + START_SECONDS
    while received.count(b"/graph?g0.expr=") < len(QUERIES) or not received.endswith(b"\n"):
        output = received.decode(errors="replace")
        assert time.monotonic() < deadline, f"demo did not come up:\n{output}"
        assert process.poll() is None, f"demo exited:\n{output}{process.stdout.read()}"
        ready, _, _ = select.select([descriptor], [], [], 1.0)
        if ready:
            received += os.read(descriptor, 65536)
    return received.decode(errors="replace")


def promql(prometheus: str, expr: str) -> list[dict[str, Any]]:
    status, body = http_get(f"{prometheus}/api/v1/query?" + urllib.parse.urlencode({"query": expr}))
    assert status == 200, body
    return list(json.loads(body)["data"]["result"])


def by_pod(result: list[dict[str, Any]]) -> dict[str, float]:
    return {s["metric"]["pod"].split("-")[0]: float(s["value"][1]) for s in result}


def leftovers(pid: int, temp_before: set[str]) -> list[str]:
    found = [
        " ".join(p.info["cmdline"] or [])
        for p in psutil.process_iter(["cmdline"])
        if any("kubensage-demo-" in part for part in p.info["cmdline"] or [])
    ]
    found += [
        line
        for line in Path("/proc/self/mounts").read_text().splitlines()
        if "kubensage-demo-" in line
    ]
    found += [str(p) for p in Path("/sys/fs/cgroup").glob(f"*/kubensage-demo-{pid}")]
    found += sorted({str(p) for p in Path("/tmp").glob("kubensage-demo-*")} - temp_before)
    return found


def test_make_demo_shows_what_the_readme_says_and_leaves_nothing(tmp_path: Path) -> None:
    missing = binaries_present()
    require(not missing, f"the demo needs {', '.join(missing)}")
    require(os.geteuid() == 0 and shutil.which("prometheus") is not None, "root and prometheus")
    require(Path("/bin/busybox").exists(), "busybox-static provides the demo's images")
    temp_before = {str(p) for p in Path("/tmp").glob("kubensage-demo-*")}
    process = subprocess.Popen(
        [str(REPO / "scripts/demo.sh"), str(Path(sys.executable).parent)],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        output = read_until_queries(process)
        fleet = re.search(r"fleet page:\s+(\S+)", output)
        prometheus = re.search(r"prometheus:\s+(\S+)/graph", output)
        assert fleet and prometheus, output

        def fleet_page() -> str | None:
            page = http_get(fleet[1])[1]
            return page if NODE in page and "demo-always-critical" in page else None

        assert "this check always reports critical" in eventually(fleet_page, timeout=90)
        queries = {
            title: urllib.parse.parse_qs(urllib.parse.urlparse(url).query)["g0.expr"][0]
            for title, url in re.findall(r"^  (\S.*)\n    (http\S+)$", output, re.M)
        }
        assert list(queries.values()) == [expr for _, expr in QUERIES]
        url = prometheus[1]
        cpu, throttled, memory, ooms, written, alerts = queries.values()
        # what the README promises for each query, once it has a minute of data
        eventually(lambda: by_pod(promql(url, ooms)).get("memory", 0) >= 1, timeout=150, every=2)
        assert by_pod(promql(url, ooms))["busy"] == 0
        eventually(lambda: by_pod(promql(url, throttled)).get("cpu", 0) > 0.5, timeout=90, every=2)
        eventually(lambda: by_pod(promql(url, written)).get("writer", 0) > 0, timeout=90, every=2)
        eventually(lambda: by_pod(promql(url, cpu)).get("busy", 0) > 0, timeout=60, every=2)
        assert by_pod(promql(url, cpu))["idle"] < 0.01
        assert eventually(lambda: by_pod(promql(url, memory)).get("memory", 0) > 4 * 1024 * 1024)
        firing = eventually(
            lambda: [
                a["metric"]
                for a in promql(url, alerts)
                if a["metric"]["alertname"] == "KubensageContainerOOMKilled"
                and a["metric"]["alertstate"] == "firing"
            ],
            timeout=90,
            every=2,
        )
        assert firing[0]["pod"].startswith("memory-hog-")
    finally:
        # Ctrl-C in a terminal: SIGINT to the whole foreground process group
        os.killpg(process.pid, signal.SIGINT)
        rest, _ = process.communicate(timeout=120)
    assert process.returncode == 0, rest
    assert "stopped; nothing left behind" in rest
    assert eventually(lambda: leftovers(process.pid, temp_before) == [], timeout=30)
