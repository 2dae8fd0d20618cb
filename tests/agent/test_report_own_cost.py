"""Every report carries what the agent itself costs: its CPU so far and its memory now."""

from __future__ import annotations

import shutil
from pathlib import Path

import psutil
import pytest

from kubensage_agent.collectors.errors import CollectorErrors
from kubensage_agent.collectors.node import NodeCollector
from kubensage_agent.hostfs import HostPaths
from kubensage_agent.report import ReportBuilder

REAL = Path(__file__).parent.parent / "fixtures" / "debian12-hybrid"


def builder_on(root: Path) -> ReportBuilder:
    errors = CollectorErrors()
    return ReportBuilder(
        agent_id="a",
        node=NodeCollector(HostPaths(root), "n", errors),
        runtime=None,
        errors=errors,
        cri_timeout=1,
    )


def test_report_carries_the_agents_cpu_and_resident_memory(tmp_path: Path) -> None:
    shutil.copytree(REAL, tmp_path / "host")
    builder = builder_on(tmp_path / "host")
    first = builder.build(1).health
    sum(range(2_000_000))  # some CPU between the two reports
    second = builder.build(2).health
    me = psutil.Process()
    assert second.process_cpu_seconds_total > first.process_cpu_seconds_total > 0
    times = me.cpu_times()
    assert second.process_cpu_seconds_total <= times.user + times.system
    assert second.process_resident_memory_bytes == pytest.approx(me.memory_info().rss, rel=0.1)


def test_unreadable_statm_leaves_memory_unreported_not_zero(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    shutil.copytree(REAL, tmp_path / "host")
    builder = builder_on(tmp_path / "host")

    def unreadable(path: str) -> str:
        raise PermissionError(path)

    monkeypatch.setattr("kubensage_agent.report.read_small", unreadable)
    health = builder.build(1).health
    assert not health.HasField("process_resident_memory_bytes")
    assert health.HasField("process_cpu_seconds_total")
