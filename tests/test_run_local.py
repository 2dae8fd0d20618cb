"""`make run`'s script: relay and agent start, metrics are served, Ctrl-C stops both."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from kubensage_lab.processes import free_port, http_get

REPO = Path(__file__).resolve().parent.parent


def test_run_local_serves_node_metrics_and_stops_on_ctrl_c(tmp_path: Path) -> None:
    grpc_address = f"127.0.0.1:{free_port()}"
    metrics_address = f"127.0.0.1:{free_port()}"
    process = subprocess.Popen(
        [
            str(REPO / "scripts" / "run-local.sh"),
            str(Path(sys.executable).parent),
            grpc_address,
            metrics_address,
            str(tmp_path / "run"),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
        env={**os.environ, "INTERVAL": "1"},
    )
    try:
        body = ""
        deadline = time.monotonic() + 60
        while "kubensage_node_load1{" not in body and time.monotonic() < deadline:
            time.sleep(0.5)
            try:
                body = http_get(f"http://{metrics_address}/metrics")[1]
            except OSError:
                body = ""
        assert "kubensage_node_load1{" in body
        assert "kubensage_node_cpu_seconds_total{" in body
    finally:
        os.killpg(process.pid, signal.SIGINT)
        output, _ = process.communicate(timeout=30)
    assert f"metrics at http://{metrics_address}/metrics" in output
    assert "stopped; logs in" in output
    assert "closed clean" in (tmp_path / "run" / "relay.log").read_text()
