"""200 simulated agents against one relay process: no errors, every report acknowledged."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

from tests.support.load import percentile, run_load
from tests.support.processes import Service, free_port, http_get, python_module

AGENTS, REPORTS, CONTAINERS = 200, 3, 110


def test_two_hundred_agents_against_one_relay(tmp_path: Path) -> None:
    grpc_port, metrics_port = free_port(), free_port()
    relay = Service(
        "relay",
        python_module(
            "relay",
            "serve",
            "--listen-address",
            f"127.0.0.1:{grpc_port}",
            "--metrics-address",
            f"127.0.0.1:{metrics_port}",
            "--log-level",
            "warning",
        ),
        tmp_path,
    ).start()
    try:
        relay.wait_http(f"http://127.0.0.1:{metrics_port}/healthz")
        result = asyncio.run(run_load(f"127.0.0.1:{grpc_port}", AGENTS, REPORTS, CONTAINERS))
        body = http_get(f"http://127.0.0.1:{metrics_port}/metrics", timeout=60)[1]
    finally:
        relay.stop()
    received = float(
        re.search(r"^kubensage_relay_reports_received_total (\S+)$", body, re.MULTILINE).group(1)
    )  # type: ignore[union-attr]
    nodes = len(set(re.findall(r'^kubensage_node_info\{[^}]*\bnode="([^"]+)"', body, re.MULTILINE)))
    print(
        f"{AGENTS} agents x {REPORTS} reports of {CONTAINERS} containers in "
        f"{result.seconds:.1f}s: {result.acked} acked, {len(result.errors)} errors, "
        f"ack p50 {percentile(result.ack_latencies, 0.5) * 1000:.0f} ms "
        f"p99 {percentile(result.ack_latencies, 0.99) * 1000:.0f} ms"
    )
    assert result.errors == []
    assert result.acked == result.sent == AGENTS * REPORTS
    assert received == AGENTS * REPORTS
    assert nodes == AGENTS
