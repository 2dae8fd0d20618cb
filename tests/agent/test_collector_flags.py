"""The node collectors' flags, generated from the registry: on/off pairs, settings, their
KUBENSAGE_* variables and config-file keys, and the comma list that predates them."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from kubensage_agent.cli import cli
from kubensage_agent.collectors.node.registry import COLLECTORS, config_fields
from kubensage_agent.parsers.mounts import parse_mounts
from kubensage_common.cliconfig import env_name

REAL = Path(__file__).parent.parent / "fixtures" / "debian12-hybrid"


@pytest.fixture
def host_root(tmp_path: Path) -> Path:
    root = tmp_path / "host"
    shutil.copytree(REAL, root)
    for entry in parse_mounts((root / "proc/1/mounts").read_text()):
        (root / entry.mountpoint.lstrip("/")).mkdir(parents=True, exist_ok=True)
    return root


def collect(host_root: Path, *args: str, env: dict[str, str] | None = None) -> Any:
    result = CliRunner().invoke(
        cli,
        [
            "collect",
            "--host-root",
            str(host_root),
            "--cri-socket",
            "unix:///nonexistent/cri.sock",
            "--sample-interval",
            "0",
            *args,
        ],
        env=env or {},
    )
    return result


def node(result: Any) -> dict[str, Any]:
    assert result.exit_code == 0, result.output
    return dict(json.loads(result.stdout)["node"])


def test_every_collector_has_an_on_off_pair_with_its_variable() -> None:
    result = CliRunner().invoke(cli, ["collect", "--help"], terminal_width=200)
    for spec in COLLECTORS:
        assert f"--collector-{spec.name} / --no-collector-{spec.name}" in result.output
        assert f"KUBENSAGE_COLLECTOR_{spec.name.upper()};" in result.output
    assert "--collector-filesystem-statfs-timeout" in result.output
    assert "--collector-diskstats-device-exclude" in result.output


def test_collectors_run_by_default_and_turn_off_by_flag_or_variable(host_root: Path) -> None:
    everything = node(collect(host_root))
    assert everything["filesystems"] and everything["disks"] and everything["cpus"]
    without = node(
        collect(host_root, "--no-collector-filesystem", env={"KUBENSAGE_COLLECTOR_CPU": "false"})
    )
    assert "filesystems" not in without and "cpus" not in without
    assert without["disks"] == everything["disks"]


def test_the_comma_list_still_turns_collectors_off(host_root: Path) -> None:
    figures = node(collect(host_root, "--disable-collectors", "diskstats, pressure"))
    assert "disks" not in figures and "pressure" not in figures and figures["filesystems"]
    refused = collect(host_root, "--disable-collectors", "memory")
    assert refused.exit_code == 2 and "unknown node collectors: memory" in refused.output


def test_settings_come_from_flags_and_config_file(host_root: Path, tmp_path: Path) -> None:
    config = tmp_path / "agent.yaml"
    config.write_text('collector-filesystem-mount-points-exclude: "^/(proc|sys|dev|tmp)($|/)"\n')
    from_file = node(collect(host_root, "--config", str(config)))
    assert [fs["mountpoint"] for fs in from_file["filesystems"]] == ["/"]
    loops = node(collect(host_root, "--collector-diskstats-device-exclude", "^zram"))
    assert {d["device"] for d in loops["disks"]} == {f"loop{i}" for i in range(8)} | {"vda"}


def test_bad_settings_stop_the_command_with_the_setting_named(host_root: Path) -> None:
    result = collect(host_root, "--collector-diskstats-device-exclude", "(")
    assert result.exit_code == 2 and "device-exclude" in result.output
    result = collect(host_root, env={"KUBENSAGE_COLLECTOR_FILESYSTEM_STATFS_TIMEOUT": "0"})
    assert result.exit_code == 2 and "statfs-timeout" in result.output


def test_an_on_off_pair_is_read_from_the_variable_of_its_first_half() -> None:
    assert env_name("--spool/--no-spool") == "KUBENSAGE_SPOOL"
    assert env_name("--collector-os/--no-collector-os") == "KUBENSAGE_COLLECTOR_OS"


def test_readme_lists_every_collector_as_the_registry_declares_it() -> None:
    readme = (Path(__file__).parents[2] / "README.md").read_text()
    table = readme.split("<!-- node collectors:")[1].split("<!-- end of node collectors -->")[0]
    rows = [line for line in table.splitlines() if line.startswith("| `")]
    assert rows == [
        f"| `{spec.name}` | {spec.help} | {'on' if spec.enabled_by_default else 'off'} |"
        for spec in COLLECTORS
    ]
    for spec in COLLECTORS:
        for setting in config_fields(spec):
            assert f"`--collector-{spec.name}-{setting.name.replace('_', '-')}`" in readme
