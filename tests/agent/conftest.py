"""A report builder over a copy of a captured host, without a runtime."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from kubensage_agent.collectors.errors import CollectorErrors
from kubensage_agent.collectors.node import NodeCollector
from kubensage_agent.hostfs import HostPaths
from kubensage_agent.report import ReportBuilder

CAPTURED_HOST = Path(__file__).parent.parent / "fixtures" / "debian12-hybrid"


@pytest.fixture
def host_builder(tmp_path: Path) -> ReportBuilder:
    root = tmp_path / "host"
    shutil.copytree(CAPTURED_HOST, root)
    errors = CollectorErrors()
    return ReportBuilder(
        agent_id="a",
        node=NodeCollector(HostPaths(root), "n", errors),
        runtime=None,
        errors=errors,
        cri_timeout=1,
    )
