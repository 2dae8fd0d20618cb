"""200 simulated agents against one relay process: no errors, every report acknowledged."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

from kubensage_lab.processes import RelayProcess, http_get
from tests.support.load import percentile, run_load

AGENTS, REPORTS, CONTAINERS = 200, 3, 110


def test_two_hundred_agents_against_one_relay(tmp_path: Path) -> None:
    relay = RelayProcess(tmp_path, "relay", "--log-level", "warning")
    try:
        relay.start()
        # streams cancelled, not closed: a cleanly closed node would leave /metrics at once
        result = asyncio.run(
            run_load(relay.address, AGENTS, REPORTS, CONTAINERS, end_cleanly=False)
        )
        body = http_get(relay.metrics_url, timeout=60)[1]
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
