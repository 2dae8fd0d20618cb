"""What Prometheus reads from /metrics for known reports, in both profiles."""

from __future__ import annotations

import itertools
import re
import shutil
import subprocess

import pytest
from prometheus_client.parser import text_string_to_metric_families

from kubensage_api.telemetry import telemetry_pb2 as tm
from relay.enrich.kube import NoEnrichment
from relay.expose.textcache import NodeTextCache
from relay.series.profiles import PROFILES, parse_profiles
from relay.state.store import NodeStore
from tests.conftest import require
from tests.support import golden
from tests.support.reports import check, container, pod, report


def scrape(store: NodeStore, profile: str = "native") -> str:
    return NodeTextCache(store, parse_profiles(profile), NoEnrichment()).text()


def samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def store_with(*reports: tm.Metrics) -> NodeStore:
    store = NodeStore(grace_seconds=30)
    for r in reports:
        store.accept(r)
    return store


def key(**labels: str) -> frozenset[tuple[str, str]]:
    return frozenset(labels.items())


def ckey(**labels: str) -> frozenset[tuple[str, str]]:
    """Container and pod series also carry the workload labels, empty without enrichment."""
    return key(workload="", workload_kind="", **labels)


def test_native_families_for_a_known_report() -> None:
    text = scrape(store_with(report()))
    got = samples(text)
    c = ckey(node="node-a", namespace="default", pod="web-1", container="app")
    assert got[("kubensage_container_cpu_usage_seconds_total", c)] == 12.5
    assert got[("kubensage_container_memory_working_set_bytes", c)] == 64 * 1024 * 1024
    assert got[("kubensage_container_memory_major_page_faults_total", c)] == 3
    assert got[("kubensage_container_fs_inodes_used", c)] == 7
    assert got[("kubensage_container_pressure_cpu_waiting_seconds_total", c)] == 1.25
    assert got[("kubensage_container_pressure_cpu_stalled_seconds_total", c)] == 0.5
    assert got[("kubensage_container_start_time_seconds", c)] == 1_700_000_001
    assert (
        got[
            (
                "kubensage_pod_network_transmit_bytes_total",
                ckey(node="node-a", namespace="default", pod="web-1", interface="eth0"),
            )
        ]
        == 2000
    )
    assert got[("kubensage_node_cpu_seconds_total", key(node="node-a", mode="idle"))] == 1000
    assert got[("kubensage_node_pressure_cpu_waiting_seconds_total", key(node="node-a"))] == 3
    assert (
        got[("kubensage_node_network_receive_bytes_total", key(node="node-a", device="eth0"))]
        == 10_000
    )
    assert (
        got[("kubensage_agent_collector_errors_total", key(node="node-a", collector="pressure"))]
        == 2
    )
    info = [k for k in got if k[0] == "kubensage_node_info"]
    assert dict(info[0][1])["runtime_version"] == "1.6.20"
    # swap was never reported: no sample rather than a misleading zero
    assert not [k for k in got if k[0] == "kubensage_container_swap_usage_bytes"]
    assert "# TYPE kubensage_container_cpu_usage_seconds_total counter" in text
    assert "# HELP kubensage_container_memory_working_set_bytes" in text


def test_label_values_are_escaped() -> None:
    nasty = 'quote " backslash \\ newline \n ünïcødé \x1e\x85\u2028 separators'
    r = report(pods=[pod(nasty, namespace="ns", containers=[container("app", "c1")])])
    text = scrape(store_with(r))
    assert 'pod="quote \\" backslash \\\\ newline \\n ünïcødé \x1e\x85\u2028 separators"' in text
    parsed = samples(text)
    c = ckey(node="node-a", namespace="ns", pod=nasty, container="app")
    assert parsed[("kubensage_container_cpu_usage_seconds_total", c)] == 12.5


def test_restarted_container_replaces_the_old_series() -> None:
    old = container("app", "old-id", cpu_seconds=500.0, state=tm.CONTAINER_STATE_EXITED, attempt=0)
    new = container("app", "new-id", cpu_seconds=1.0, attempt=1, created=1_800_000_000 * 10**9)
    got = samples(scrape(store_with(report(pods=[pod("web-1", containers=[old, new])]))))
    c = ckey(node="node-a", namespace="default", pod="web-1", container="app")
    assert got[("kubensage_container_cpu_usage_seconds_total", c)] == 1.0
    infos = [dict(k[1]) for k in got if k[0] == "kubensage_container_info"]
    assert [i["container_id"] for i in infos] == ["new-id"]


def test_pods_absent_from_the_newest_report_vanish_at_once() -> None:
    store = store_with(report(sequence=1))
    assert "web-1" in scrape(store)
    store.accept(report(sequence=2, pods=[]))
    text = scrape(store)
    assert "web-1" not in text
    assert "kubensage_node_load1" in text


def test_cadvisor_profile_names_and_labels() -> None:
    got = samples(scrape(store_with(report()), profile="cadvisor"))
    labels = key(
        node="node-a",
        namespace="default",
        pod="web-1",
        container="app",
        image="registry.local/app:1.2",
        name="c1",
        id="c1",
    )
    # cAdvisor without per-CPU stats (as the kubelet runs it) labels the total cpu="total"
    assert got[("container_cpu_usage_seconds_total", labels | {("cpu", "total")})] == 12.5
    assert got[("container_memory_working_set_bytes", labels)] == 64 * 1024 * 1024
    assert got[("container_spec_memory_limit_bytes", labels)] == 256 * 1024 * 1024
    assert got[("container_pressure_cpu_waiting_seconds_total", labels)] == 1.25
    network = key(
        node="node-a",
        namespace="default",
        pod="web-1",
        container="",
        image="",
        name="sb-default-web-1",
        id="sb-default-web-1",
        interface="eth0",
    )
    assert got[("container_network_receive_bytes_total", network)] == 1000
    assert not [k for k in got if k[0].startswith("kubensage_container")]


SANDBOX = "5b1c0d7e"
CONTAINER = "9f3a2c4d"


@pytest.mark.parametrize(
    ("container_cgroup", "sandbox_cgroup"),
    [
        # cgroupfs driver (containerd, CRI-O): the id is the cgroup's name
        (
            f"/kubepods/burstable/poduid-web/{CONTAINER}",
            f"/kubepods/burstable/poduid-web/{SANDBOX}",
        ),
        # systemd driver: a scope per container, named after the runtime
        (
            f"/kubepods.slice/kubepods-pod1.slice/cri-containerd-{CONTAINER}.scope",
            f"/kubepods.slice/kubepods-pod1.slice/cri-containerd-{SANDBOX}.scope",
        ),
        (
            f"/kubepods.slice/kubepods-pod1.slice/crio-{CONTAINER}.scope",
            f"/kubepods.slice/kubepods-pod1.slice/crio-{SANDBOX}.scope",
        ),
        # no cgroup known for any container: the sandbox's own id
        ("", SANDBOX),
    ],
)
def test_cadvisor_pod_network_id_is_the_sandboxs_cgroup(
    container_cgroup: str, sandbox_cgroup: str
) -> None:
    """cAdvisor serves pod network on the sandbox (pause) container, whose `id` is its
    cgroup: beside the pod's containers, named as they are."""
    app = container("app", CONTAINER)
    app.cgroup_path = container_cgroup
    web = pod("web-1", containers=[app], sandbox_id=SANDBOX)
    got = samples(scrape(store_with(report(pods=[web])), profile="cadvisor"))
    [ids] = [
        dict(labels)["id"]
        for name, labels in got
        if name == "container_network_receive_bytes_total"
    ]
    assert ids == sandbox_cgroup


def test_both_profile_has_both_name_sets() -> None:
    names = {k[0] for k in samples(scrape(store_with(report()), profile="both"))}
    assert {
        "container_cpu_usage_seconds_total",
        "kubensage_container_cpu_usage_seconds_total",
    } <= names


# node_exporter names its meminfo families after the kernel's fields (MemTotal), which
# promtool's lint calls camelCase; the node-mixin reads exactly those names, and promtool
# says the same of node_exporter's own output. No other complaint is allowed.
NODE_EXPORTER_MEMINFO_LINT = re.compile(
    r"node_memory_\w+ metric names should be written in 'snake_case' not 'camelCase'"
)

PROFILE_COMBINATIONS = [
    ",".join(names)
    for size in range(1, len(PROFILES) + 1)
    for names in itertools.permutations(PROFILES, size)
]


@pytest.mark.parametrize("profile", PROFILE_COMBINATIONS)
def test_promtool_accepts_a_realistic_scrape(profile: str, tmp_path) -> None:  # type: ignore[no-untyped-def]
    promtool = shutil.which("promtool")
    require(promtool is not None, "promtool (Debian package prometheus) validates exposition")
    assert promtool is not None
    pods = [
        pod(
            f"web-{i}",
            namespace=f"team-{i % 3}",
            labels={"app": "web"},
            containers=[container("app", f"c{i}"), container("sidecar", f"s{i}")],
        )
        for i in range(20)
    ]
    with_checks = report(pods=pods)
    with_checks.checks.extend([check("ntp"), check("disk", tm.CHECK_STATE_CRITICAL, 2)])
    with_checks.health.check_errors_total = 1
    full = golden.report()  # every node figure set
    store = store_with(with_checks, report(node="node-b", agent_id="b"), full)
    text = scrape(store, profile)
    result = subprocess.run(
        [promtool, "check", "metrics"],
        input=text,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    complaints = (result.stdout + result.stderr).splitlines()
    meminfo_lint = [line for line in complaints if NODE_EXPORTER_MEMINFO_LINT.fullmatch(line)]
    assert [line for line in complaints if line not in meminfo_lint] == []
    if "node_exporter" in profile:
        assert meminfo_lint, "the kernel's meminfo names are served as they are"
    # 3 is promtool's exit code for lint findings; a parse error is 1
    assert result.returncode == (3 if meminfo_lint else 0), result.stdout + result.stderr


def test_nodes_render_once_per_report_and_stream_state() -> None:
    store = store_with(report(sequence=1), report(node="node-b", agent_id="b"))
    cache = NodeTextCache(store, parse_profiles("native"), NoEnrichment())
    first = cache.text()
    assert cache.renders == 2
    assert cache.text() == first and cache.renders == 2  # nothing changed: no rendering
    store.accept(report(sequence=2, pods=[]))
    assert "web-1" not in [
        line for line in cache.text().splitlines() if 'node="node-a"' in line and "pod=" in line
    ]
    assert cache.renders == 3  # only node-a again
    store.connected("node-b")
    assert 'kubensage_relay_node_connected{node="node-b"} 1.0' in cache.text()
    assert cache.renders == 4


def test_each_family_has_one_header_across_nodes() -> None:
    text = NodeTextCache(
        store_with(report(), report(node="node-b", agent_id="b")),
        parse_profiles("native,cadvisor"),
        NoEnrichment(),
    ).text()
    headers = [line for line in text.splitlines() if line.startswith("# TYPE ")]
    assert len(headers) == len(set(headers))
    families = list(text_string_to_metric_families(text))
    load = next(f for f in families if f.name == "kubensage_node_load1")
    assert {s.labels["node"] for s in load.samples} == {"node-a", "node-b"}
