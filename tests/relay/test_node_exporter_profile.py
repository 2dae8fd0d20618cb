"""The node_exporter profile against what node_exporter 1.5 itself serves.

tests/fixtures/node_exporter/families-1.5.0.prom is Debian's node_exporter 1.5.0 with its
default collectors on the Debian 12 VM the debian12-hybrid fixtures come from: every node_*
family's HELP, TYPE and first sample. The profile must use the same names, types and label
names; what it does not serve must be named in the README's "Replacing node_exporter".
"""

from __future__ import annotations

import fnmatch
import time
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from kubensage_agent.parsers.meminfo import parse_meminfo
from kubensage_api.telemetry import telemetry_pb2 as tm
from tests.relay.test_exposition import samples, scrape, store_with
from tests.support import golden
from tests.support.node_exporter import readme_not_served
from tests.support.reports import report

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
CAPTURE = FIXTURES / "node_exporter" / "families-1.5.0.prom"
README = FIXTURES.parent.parent / "README.md"
# served under the name later node_exporter releases use (1.9 added PSI irq)
LATER_THAN_1_5 = {"node_pressure_irq_stalled_seconds_total"}


def families(text: str) -> dict[str, tuple[str, frozenset[str]]]:
    """Family name -> (TYPE, label names of its first sample) as the text writes them."""
    types = {
        line.split()[2]: line.split()[3] for line in text.splitlines() if line.startswith("# TYPE")
    }
    found: dict[str, tuple[str, frozenset[str]]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            name = sample.name if sample.name in types else family.name
            found.setdefault(name, (types[name], frozenset(sample.labels)))
    return found


@pytest.fixture(scope="module")
def node_exporter() -> dict[str, tuple[str, frozenset[str]]]:
    return families(CAPTURE.read_text())


def profile_text(*reports: tm.Metrics) -> str:
    return scrape(store_with(*reports), "node_exporter")


def test_names_types_and_label_names_are_node_exporters(
    node_exporter: dict[str, tuple[str, frozenset[str]]],
) -> None:
    served = families(golden.render("node_exporter"))
    assert set(served) - set(node_exporter) == LATER_THAN_1_5
    for name, (kind, labels) in served.items():
        if name in LATER_THAN_1_5:
            assert (kind, labels) == ("counter", {"instance"})
            continue
        assert kind == node_exporter[name][0], name
        assert labels == node_exporter[name][1] | {"instance"}, name


def test_meminfo_families_of_a_real_meminfo_are_node_exporters(
    node_exporter: dict[str, tuple[str, frozenset[str]]],
) -> None:
    meminfo = parse_meminfo((FIXTURES / "debian12-hybrid" / "proc" / "meminfo").read_text())
    full = report()
    full.node.meminfo.update(meminfo)
    got = samples(profile_text(full))
    instance = frozenset({("instance", "node-a")})
    ours = {name for name, _ in got if name.startswith("node_memory_")}
    assert ours == {name for name in node_exporter if name.startswith("node_memory_")}
    assert got[("node_memory_Active_anon_bytes", instance)] == meminfo["Active(anon)"]
    assert got[("node_memory_HugePages_Total", instance)] == meminfo["HugePages_Total"]
    assert got[("node_memory_Hugepagesize_bytes", instance)] == meminfo["Hugepagesize"]


def test_every_family_not_served_is_named_in_the_readme(
    node_exporter: dict[str, tuple[str, frozenset[str]]],
) -> None:
    served = set(families(golden.render("node_exporter")))
    patterns = readme_not_served(README)
    missing = [
        name
        for name in node_exporter
        if name not in served
        and not name.startswith("node_memory_")
        and not any(fnmatch.fnmatchcase(name, pattern) for pattern in patterns)
    ]
    assert missing == []
    # and names nothing the profile serves
    assert [p for p in patterns if any(fnmatch.fnmatchcase(name, p) for name in served)] == []


def test_the_node_is_the_instance_and_nothing_else_names_it() -> None:
    got = samples(golden.render("node_exporter"))
    assert got
    for name, labels in got:
        label = dict(labels)
        assert label["instance"] == "golden-node", name
        assert "node" not in label, name


def test_a_mount_whose_statfs_failed_has_only_device_error() -> None:
    got = samples(golden.render("node_exporter"))
    stuck = {("device", "nfs:/export"), ("fstype", "nfs4"), ("mountpoint", "/mnt/stuck")}
    names = {name for name, labels in got if stuck <= labels}
    assert names == {"node_filesystem_device_error"}
    assert got[("node_filesystem_device_error", frozenset({("instance", "golden-node"), *stuck}))]


def test_an_agent_without_the_meminfo_map_still_feeds_the_mixins_memory_rule() -> None:
    older = report()  # the memory summary only, as agents before the meminfo map send
    got = samples(profile_text(older))
    instance = frozenset({("instance", "node-a")})
    assert got[("node_memory_MemTotal_bytes", instance)] == 8 * 1024**3
    assert got[("node_memory_MemAvailable_bytes", instance)] == 6 * 1024**3
    assert not [name for name, _ in got if name == "node_memory_MemFree_bytes"]


def test_meminfo_keys_no_kernel_would_print_are_skipped() -> None:
    hostile = report()
    hostile.node.meminfo.update(
        {
            "MemTotal": 1024,
            'Mem"Total': 1,
            "a b": 2,
            "x\n# TYPE y counter": 3,
            "": 4,
            "K" * 300: 5,
            "Active(anon": 6,
        }
    )
    text = profile_text(hostile)
    memory = {name for name, _ in samples(text) if name.startswith("node_memory_")}
    assert memory == {"node_memory_MemTotal_bytes"}


@pytest.mark.parametrize(
    ("version_id", "expected"),
    [("12", 12.0), ("22.04", 22.04), ("3.18.4", 3.18), ("rolling", None), ("", None)],
)
def test_os_version_is_the_leading_major_minor(version_id: str, expected: float | None) -> None:
    r = report()
    r.node.os_release.update({"ID": "linux", "NAME": "Linux"})
    if version_id:
        r.node.os_release["VERSION_ID"] = version_id
    got = {name: value for (name, _), value in samples(profile_text(r)).items()}
    assert got.get("node_os_version") == expected


def test_os_info_from_an_agent_without_the_os_release_map() -> None:
    older = report()
    older.node.os_name, older.node.os_id, older.node.os_version = "Debian GNU/Linux", "debian", "12"
    (labels,) = [dict(k) for name, k in samples(profile_text(older)) if name == "node_os_info"]
    assert (labels["name"], labels["id"], labels["version_id"], labels["pretty_name"]) == (
        "Debian GNU/Linux",
        "debian",
        "12",
        "Debian 12",
    )
    assert labels["build_id"] == labels["variant"] == ""


@pytest.mark.parametrize(
    ("machine", "goarch"), [("x86_64", "amd64"), ("aarch64", "arm64"), ("mips64", "mips64")]
)
def test_build_info_stands_in_with_the_agents_version(machine: str, goarch: str) -> None:
    r = report()
    r.node.architecture, r.node.uname_sysname, r.agent_version = machine, "Linux", "1.4.2"
    (labels,) = [
        dict(k) for name, k in samples(profile_text(r)) if name == "node_exporter_build_info"
    ]
    assert labels == {
        "instance": "node-a",
        "branch": "kubensage",
        "goarch": goarch,
        "goos": "linux",
        "goversion": "unknown",
        "revision": "unknown",
        "version": "1.4.2",
    }


def test_figures_the_node_did_not_report_have_no_samples() -> None:
    bare = tm.Metrics(
        agent_id="bare", sequence=1, agent_version="0.1.0", collected_at_unix_nanos=time.time_ns()
    )
    bare.node.name = "node-bare"
    names = {name for name, _ in samples(profile_text(bare))}
    assert names == {"node_exporter_build_info"}
