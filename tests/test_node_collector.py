"""The node collector over a host root built from captured files."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from kubensage_agent.collectors.errors import CollectorErrors
from kubensage_agent.collectors.node import NodeCollector
from kubensage_agent.hostfs import HostPaths

REAL = Path(__file__).parent / "fixtures" / "debian12-hybrid"


@pytest.fixture
def host_root(tmp_path: Path) -> Path:
    root = tmp_path / "host"
    shutil.copytree(REAL, root)
    return root


def collect(root: Path, disabled: frozenset[str] = frozenset()):  # type: ignore[no-untyped-def]
    errors = CollectorErrors()
    node = NodeCollector(HostPaths(root), "node-a", errors, disabled).collect()
    return node, errors


def test_node_figures_come_from_the_host_root(host_root: Path) -> None:
    node, errors = collect(host_root)
    assert not errors.totals
    assert node.name == "node-a"
    # /proc/stat "cpu  7400 0 2115 93811 ..." in USER_HZ (100/s)
    assert node.cpu_seconds_by_mode["user"] == pytest.approx(74.0)
    assert node.cpu_seconds_by_mode["idle"] == pytest.approx(938.11)
    assert node.context_switches > 0
    assert node.memory.total_bytes > node.memory.available_bytes > 0
    assert {p.resource for p in node.pressure} == {"cpu", "memory", "io"}
    assert {i.name for i in node.interfaces} == {"lo", "ifb0", "ifb1", "eth0"}
    assert node.os_image == "Debian GNU/Linux 12 (bookworm)"
    assert node.boot_time_unix_nanos > 0
    assert node.uptime_seconds > 0


def test_kernel_without_psi_gives_no_pressure_and_no_error(host_root: Path) -> None:
    shutil.rmtree(host_root / "proc" / "pressure")
    node, errors = collect(host_root)
    assert len(node.pressure) == 0
    assert not errors.totals


def test_missing_files_cost_only_their_own_fields(host_root: Path) -> None:
    (host_root / "proc" / "meminfo").unlink()
    (host_root / "proc" / "net" / "dev").unlink()
    node, errors = collect(host_root)
    assert errors.totals == {"memory": 1, "netdev": 1}
    assert not node.memory.HasField("total_bytes")
    assert len(node.interfaces) == 0
    assert node.cpu_seconds_by_mode["user"] == pytest.approx(74.0)
    assert len(node.pressure) == 3


def test_malformed_file_is_counted_each_cycle_but_logged_once(host_root: Path) -> None:
    (host_root / "proc" / "pressure" / "io").write_text("some avg10=x\n")
    errors = CollectorErrors()
    collector = NodeCollector(HostPaths(host_root), "n", errors)
    for _ in range(3):
        collector.collect()
    assert errors.totals["pressure"] == 3
    assert list(errors.once.active()) == ["collector:pressure"]


def test_disabled_collectors_are_skipped_and_unknown_names_refused(host_root: Path) -> None:
    node, _ = collect(host_root, frozenset({"pressure", "netdev"}))
    assert len(node.pressure) == 0 and len(node.interfaces) == 0
    with pytest.raises(ValueError, match="nonsense"):
        NodeCollector(HostPaths(host_root), "n", CollectorErrors(), frozenset({"nonsense"}))
