"""Every report carries what the agent itself costs: its CPU so far and its memory now."""

from __future__ import annotations

import psutil
import pytest

from kubensage_agent.report import ReportBuilder


def test_report_carries_the_agents_cpu_and_resident_memory(host_builder: ReportBuilder) -> None:
    first = host_builder.build(1).health
    sum(range(2_000_000))  # some CPU between the two reports
    second = host_builder.build(2).health
    me = psutil.Process()
    assert second.process_cpu_seconds_total > first.process_cpu_seconds_total > 0
    times = me.cpu_times()
    assert second.process_cpu_seconds_total <= times.user + times.system
    assert second.process_resident_memory_bytes == pytest.approx(me.memory_info().rss, rel=0.1)


def test_unreadable_statm_leaves_memory_unreported_not_zero(
    host_builder: ReportBuilder, monkeypatch: pytest.MonkeyPatch
) -> None:
    def unreadable(path: str) -> str:
        raise PermissionError(path)

    monkeypatch.setattr("kubensage_agent.report.read_small", unreadable)
    health = host_builder.build(1).health
    assert not health.HasField("process_resident_memory_bytes")
    assert health.HasField("process_cpu_seconds_total")
