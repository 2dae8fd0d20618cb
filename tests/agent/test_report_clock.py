"""Report timestamps never go backwards, even when the wall clock does."""

from __future__ import annotations

import pytest

from kubensage_agent.report import ReportBuilder


def test_clock_stepped_back_does_not_make_reports_older(
    host_builder: ReportBuilder, monkeypatch: pytest.MonkeyPatch
) -> None:
    wall = iter([5_000_000_000_000, 4_000_000_000_000, 6_000_000_000_000])
    monkeypatch.setattr("kubensage_agent.report.time.time_ns", lambda: next(wall))
    stamps = [host_builder.build(sequence).collected_at_unix_nanos for sequence in (1, 2, 3)]
    assert stamps == [5_000_000_000_000, 5_000_000_000_001, 6_000_000_000_000]
