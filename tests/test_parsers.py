"""Every kernel-file parser on captured files, on variants, and on damaged input."""

from __future__ import annotations

from pathlib import Path

import pytest

from kubensage_agent.parsers.loadavg import parse_loadavg
from kubensage_agent.parsers.netdev import parse_net_dev
from kubensage_agent.parsers.osrelease import parse_os_release
from kubensage_agent.parsers.pressure import parse_pressure
from kubensage_agent.parsers.uptime import parse_uptime

FIXTURES = Path(__file__).parent / "fixtures"
REAL = FIXTURES / "debian12-hybrid"
VARIANTS = FIXTURES / "variants"


def read(path: Path) -> str:
    return path.read_text()


def test_pressure_real_cpu_file_has_some_and_full_in_seconds() -> None:
    stats = parse_pressure(read(REAL / "proc/pressure/cpu"))
    assert stats.some is not None and stats.full is not None
    assert stats.some.total_seconds == pytest.approx(6405101e-6)
    assert stats.some.avg300 == pytest.approx(0.37)
    assert stats.full.total_seconds == 0


@pytest.mark.parametrize("resource", ["memory", "io"])
def test_pressure_real_files_parse(resource: str) -> None:
    stats = parse_pressure(read(REAL / "proc/pressure" / resource))
    assert stats.some is not None and stats.full is not None
    assert stats.some.total_seconds >= stats.full.total_seconds


def test_pressure_pre_5_13_cpu_file_has_no_full_line() -> None:
    stats = parse_pressure(read(VARIANTS / "cpu.pressure-5.4"))
    assert stats.full is None
    assert stats.some is not None
    assert stats.some.total_seconds == pytest.approx(157.622356)


@pytest.mark.parametrize("name", ["pressure-garbage", "pressure-truncated"])
def test_pressure_rejects_damaged_files(name: str) -> None:
    with pytest.raises(ValueError, match="PSI"):
        parse_pressure(read(VARIANTS / name))


@pytest.mark.parametrize("text", ["", "weird avg10=1 avg60=1 avg300=1 total=1\n"])
def test_pressure_rejects_empty_and_unknown_kinds(text: str) -> None:
    with pytest.raises(ValueError):
        parse_pressure(text)


def test_net_dev_real_file_reads_every_interface_and_column() -> None:
    interfaces = {i.name: i for i in parse_net_dev(read(REAL / "proc/net/dev"))}
    assert set(interfaces) == {"lo", "ifb0", "ifb1", "eth0"}
    eth0 = interfaces["eth0"]
    assert (eth0.receive_bytes, eth0.receive_packets) == (180098450, 5404)
    assert (eth0.transmit_bytes, eth0.transmit_packets) == (288940, 2940)
    assert eth0.receive_errors == eth0.transmit_drops == 0


def test_net_dev_rejects_truncated_line_and_missing_header() -> None:
    with pytest.raises(ValueError, match="truncated"):
        parse_net_dev(read(VARIANTS / "netdev-truncated"))
    with pytest.raises(ValueError, match="header"):
        parse_net_dev("eth0: 1 2 3\n")


def test_loadavg_and_uptime_real_files() -> None:
    load1, load5, load15 = parse_loadavg(read(REAL / "proc/loadavg"))
    assert min(load1, load5, load15) >= 0
    assert parse_uptime(read(REAL / "proc/uptime")) > 0


def test_loadavg_and_uptime_reject_garbage() -> None:
    with pytest.raises(ValueError):
        parse_loadavg(read(VARIANTS / "loadavg-garbage"))
    with pytest.raises(ValueError):
        parse_uptime("")
    with pytest.raises(ValueError):
        parse_uptime("soon 1.0")


def test_os_release_real_and_quoted_variants() -> None:
    debian = parse_os_release(read(REAL / "etc/os-release"))
    assert debian["NAME"] == "Debian GNU/Linux"
    assert debian["VERSION_ID"] == "12"
    ubuntu = parse_os_release(read(VARIANTS / "os-release-quoted"))
    assert ubuntu["PRETTY_NAME"] == "Ubuntu 22.04.4 LTS"
    assert ubuntu["NAME"] == "Ubuntu"
    assert ubuntu["ID"] == "ubuntu"
    assert "UNTERMINATED" not in ubuntu
