"""Report timestamps never go backwards, even when the wall clock does."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from kubensage_agent.collectors.errors import CollectorErrors
from kubensage_agent.collectors.node import NodeCollector
from kubensage_agent.hostfs import HostPaths
from kubensage_agent.report import ReportBuilder

REAL = Path(__file__).parent.parent / "fixtures" / "debian12-hybrid"


def test_clock_stepped_back_does_not_make_reports_older(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    shutil.copytree(REAL, tmp_path / "host")
    errors = CollectorErrors()
    builder = ReportBuilder(
        agent_id="a",
        node=NodeCollector(HostPaths(tmp_path / "host"), "n", errors),
        runtime=None,
        errors=errors,
        cri_timeout=1,
    )
    wall = iter([5_000_000_000_000, 4_000_000_000_000, 6_000_000_000_000])
    monkeypatch.setattr("kubensage_agent.report.time.time_ns", lambda: next(wall))
    stamps = [builder.build(sequence).collected_at_unix_nanos for sequence in (1, 2, 3)]
    assert stamps == [5_000_000_000_000, 5_000_000_000_001, 6_000_000_000_000]
