"""The fleet page and its JSON: rows, stale and struggling marks, sorting, escaping, auth."""

from __future__ import annotations

import json
import ssl
import time
from dataclasses import fields
from pathlib import Path
from typing import Any

import bcrypt

from kubensage_api.telemetry import telemetry_pb2 as tm
from kubensage_lab.processes import RelayProcess, eventually, http_status
from relay.expose.fleet import AgentRow, FleetPage, duration
from relay.state.store import NodeStore
from tests.support.html import PAGE_TAGS, Page
from tests.support.pki import CertificateAuthority
from tests.support.reports import check, container, pod, report

MARKUP = '<script>alert(1)</script><img src=x onerror="alert(2)">'


def call(page: FleetPage, path: str = "/", query: str = "") -> tuple[str, dict[str, str], str]:
    answer: dict[str, Any] = {}

    def start_response(status: str, headers: list[tuple[str, str]]) -> None:
        answer["status"], answer["headers"] = status, dict(headers)

    body = b"".join(page({"PATH_INFO": path, "QUERY_STRING": query}, start_response))
    return answer["status"], answer["headers"], body.decode()


def fleet(*reports: tm.Metrics, connected: tuple[str, ...] = ()) -> NodeStore:
    store = NodeStore(grace_seconds=3600)
    for node in connected:
        store.connected(node)
    for item in reports:
        store.accept(item)
    return store


def test_rows_carry_every_column_and_fresh_connected_agents_are_fine() -> None:
    healthy = report("node-a", pods=[pod("web", containers=[container("app", "c1")])])
    healthy.checks.append(check("ntp"))
    store = fleet(healthy, connected=("node-a",))
    (row,) = FleetPage(store).rows(time.time())
    assert (row.node, row.agent_id, row.agent_version) == ("node-a", "agent-1", "0.1.0")
    assert (row.runtime, row.runtime_version) == ("containerd", "1.6.20")
    assert row.connected and row.connected_since_unix is not None
    assert (row.pods, row.containers, row.checks, row.failing_checks) == (1, 1, 1, [])
    assert row.interval_seconds == 10 and not row.stale and row.struggling == []


def test_stale_when_silent_for_two_intervals_or_not_connected() -> None:
    store = fleet(report("node-a"), report("node-b", agent_id="agent-2"), connected=("node-a",))
    now = time.time()
    rows = {r.node: r for r in FleetPage(store).rows(now)}
    assert not rows["node-a"].stale and rows["node-b"].stale  # node-b holds no stream
    later = {r.node: r for r in FleetPage(store).rows(now + 21)}  # 2 x 10 s interval passed
    assert later["node-a"].stale and later["node-a"].last_report_age_seconds >= 21


def test_struggling_when_drops_or_errors_rise_the_queue_grows_or_checks_fail() -> None:
    first = report("node-a", sequence=1)
    second = report("node-a", sequence=2)
    second.health.dropped_reports_total = 3
    second.health.cri_errors_total = 1
    second.health.queue_depth = 4
    second.checks.append(check("disk", tm.CHECK_STATE_CRITICAL, 2, "read-only"))
    store = fleet(first, second, connected=("node-a",))
    (row,) = FleetPage(store).rows(time.time())
    assert row.struggling == ["dropping reports", "CRI errors", "queue 4", "1 failing check"]
    assert row.failing_checks[0].name == "disk" and row.failing_checks[0].state == "critical"
    third = report("node-a", sequence=3)
    third.health.dropped_reports_total = 3  # no longer rising: dropped long ago
    third.health.cri_errors_total = 1
    store.accept(third)
    (row,) = FleetPage(store).rows(time.time())
    assert row.struggling == []


def test_agent_strings_are_text_never_markup() -> None:
    evil = report(MARKUP, pods=[pod(MARKUP, containers=[container(MARKUP, "c1")])])
    evil.agent_version = MARKUP
    evil.runtime.version = MARKUP
    evil.checks.append(check("ntp", tm.CHECK_STATE_CRITICAL, 2, f'"><b>{MARKUP}'))
    status, headers, body = call(FleetPage(fleet(evil, connected=(MARKUP,))))
    assert status == "200 OK" and headers["Content-Type"].startswith("text/html")
    assert "script-src" not in headers["Content-Security-Policy"]
    assert "default-src 'none'" in headers["Content-Security-Policy"]
    page = Page(body)
    assert page.tags <= PAGE_TAGS
    assert page.rows == [MARKUP]
    assert sum(MARKUP in text for text in page.text) >= 3  # node, agent version, runtime
    assert f'"><b>{MARKUP}' in page.titles  # the check output, whole, as an attribute value


def test_long_agent_strings_are_cut() -> None:
    long = report("node-a")
    long.agent_version = "v" * 100_000
    long.checks.append(check("ntp", tm.CHECK_STATE_CRITICAL, 2, "x" * 100_000))
    (row,) = FleetPage(fleet(long)).rows(time.time())
    assert len(row.agent_version) == 256 and row.agent_version.endswith("…")
    assert len(row.failing_checks[0].output) == 4096
    assert len(call(FleetPage(fleet(long)))[2]) < 20_000


def test_sorting_by_any_column_both_ways_through_links() -> None:
    reports = []
    for index, (name, queue) in enumerate((("beta", 5), ("alpha", 0), ("gamma", 2))):
        item = report(name, agent_id=f"agent-{index}")
        item.health.queue_depth = queue
        reports.append(item)
    page = FleetPage(fleet(*reports, connected=("alpha", "beta", "gamma")))
    assert Page(call(page)[2]).rows == ["alpha", "beta", "gamma"]
    assert Page(call(page, query="sort=queue&order=desc")[2]).rows == ["beta", "gamma", "alpha"]
    assert Page(call(page, query="sort=queue&order=asc")[2]).rows == ["alpha", "gamma", "beta"]
    assert Page(call(page, query="sort=nonsense")[2]).rows == ["alpha", "beta", "gamma"]
    links = Page(call(page, query="sort=queue&order=desc")[2]).links
    assert "?sort=queue&order=asc" in links and "?sort=node&order=asc" in links
    stale_first = Page(call(page, query="sort=status")[2]).rows
    assert stale_first[:2] == ["beta", "gamma"]  # struggling (queue > 1) before fine


def test_json_has_the_same_rows_and_fields() -> None:
    item = report("node-a")
    item.checks.append(check("ntp", tm.CHECK_STATE_WARNING, 1, "drift 80ms"))
    page = FleetPage(fleet(item, connected=("node-a",)))
    status, headers, body = call(page, "/api/v1/agents", "sort=node")
    assert status == "200 OK" and headers["Content-Type"] == "application/json"
    (agent,) = json.loads(body)["agents"]
    assert set(agent) == {f.name for f in fields(AgentRow)}
    assert agent["node"] == "node-a" and agent["failing_checks"] == [
        {"name": "ntp", "state": "warning", "output": "drift 80ms"}
    ]
    assert agent["struggling"] == ["1 failing check"]


def test_an_empty_relay_says_so() -> None:
    body = call(FleetPage(NodeStore(grace_seconds=30)))[2]
    assert "No agent reports yet." in body and "0 nodes" in body


def test_durations_read_like_a_person_would_say_them() -> None:
    assert [duration(s) for s in (4.2, 75, 3 * 3600 + 120, 2 * 86400 + 3600)] == [
        "4s",
        "1m 15s",
        "3h 2m",
        "2d 1h",
    ]


def test_store_knows_since_when_a_node_is_connected() -> None:
    store = fleet(report("node-a"))
    assert store.snapshot()[0].connected_since_unix is None
    before = time.time()
    store.connected("node-a")
    store.connected("node-a")  # a second stream of the same node keeps the first time
    since = store.snapshot()[0].connected_since_unix
    assert since is not None and since >= before
    store.disconnected("node-a")
    assert store.snapshot()[0].connected_since_unix == since
    store.disconnected("node-a")
    assert store.snapshot()[0].connected_since_unix is None


def test_the_relay_guards_the_page_with_the_metrics_tls_and_basic_auth(tmp_path: Path) -> None:
    ca = CertificateAuthority(tmp_path / "pki")
    server = ca.issue("relay.test", server=True)
    hashed = bcrypt.hashpw(b"look", bcrypt.gensalt(rounds=4)).decode()
    web = tmp_path / "web.yml"
    web.write_text(
        f"tls_server_config:\n  cert_file: {server.cert}\n  key_file: {server.key}\n"
        f"basic_auth_users:\n  operator: '{hashed}'\n"
    )
    relay = RelayProcess(tmp_path, "relay", "--web-config-file", str(web), "--no-kube-enrichment")
    context = ssl.create_default_context(cafile=str(ca.cert_path))
    base = f"https://127.0.0.1:{relay.http}"

    def get(path: str, password: str | None = None) -> int:
        user = None if password is None else "operator"
        return http_status(base + path, context=context, user=user, password=password or "")

    relay.service.start()
    try:
        eventually(lambda: get("/healthz") == 200, timeout=60)
        for path in ("/", "/api/v1/agents", "/metrics"):
            assert get(path) == 401, path
            assert get(path, "wrong") == 401, path
            assert get(path, "look") == 200, path
    finally:
        relay.stop()
