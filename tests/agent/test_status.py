"""/status on the agent's health port: the cached report and the agent's figures, with no CRI
call made by the request, answered to loopback peers only unless told otherwise."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from google.protobuf import json_format

from kubensage_agent.push.status import StatusPage, status_app
from kubensage_api.telemetry import telemetry_pb2 as tm
from kubensage_common.addresses import is_loopback
from kubensage_lab.processes import RelayProcess, agent_service, eventually, free_port, http_get
from tests.support.fake_cri import FakeContainer, FakeCriServer, FakeRuntime
from tests.support.reports import report


@pytest.fixture
def runtime(tmp_path: Path) -> Iterator[tuple[FakeRuntime, FakeCriServer]]:
    fake = FakeRuntime(name="fake-runtime", version="9.9")
    fake.add_pod("sb1", "web-0", "shop")
    fake.containers.append(FakeContainer("c1", "sb1", "app", usage_ns=5_000_000_000))
    with FakeCriServer(tmp_path / "cri.sock", fake) as server:
        yield fake, server


def test_status_answers_from_the_cache_without_calling_the_runtime(
    tmp_path: Path, runtime: tuple[FakeRuntime, FakeCriServer]
) -> None:
    fake, server = runtime
    health = free_port()
    with RelayProcess(tmp_path, "relay", "--no-kube-enrichment") as relay:
        agent = agent_service(
            tmp_path,
            "status-node",
            relay.address,
            "--cri-socket",
            server.endpoint,
            "--interval",
            "600",  # one cycle at start, then none while the test asks
            "--health-address",
            f"127.0.0.1:{health}",
            "--checks-dir",
            "",
        ).start()
        try:
            url = f"http://127.0.0.1:{health}/status"

            def acknowledged() -> dict[str, Any] | None:
                try:
                    status, body = http_get(url)
                except OSError:  # not serving yet
                    return None
                if status != 200:
                    return None
                document = json.loads(body)
                return document if document["agent"]["relay"]["last_ack_sequence"] else None

            eventually(acknowledged, timeout=60)
            calls_before = list(fake.calls)
            answers = [json.loads(http_get(url)[1]) for _ in range(5)]
            assert fake.calls == calls_before  # not one CRI call made by the requests
        finally:
            assert agent.stop() == 0
    document = answers[-1]
    assert all(answer["report"] == document["report"] for answer in answers)
    parsed = json_format.ParseDict(document["report"], tm.Metrics())  # the collect json form
    assert "collected_at_unix_nanos" in document["report"]  # proto field names
    assert parsed.node.name == "status-node" and parsed.sequence >= 1
    assert [(p.namespace, p.name) for p in parsed.pods] == [("shop", "web-0")]
    assert parsed.runtime.name == "fake-runtime"
    figures = document["agent"]
    assert figures["node"] == "status-node" and figures["interval_seconds"] == 600
    assert figures["relay"]["connected"] is True and figures["relay"]["address"] == relay.address
    assert figures["relay"]["last_ack_sequence"] >= parsed.sequence
    assert figures["relay"]["last_ack_unix"] > 0
    assert figures["queue"]["depth"] == 0 and figures["spool"]["enabled"] is False


def call(app: Any, remote: str) -> tuple[str, bytes]:
    answer: dict[str, str] = {}

    def start_response(status: str, headers: list[tuple[str, str]]) -> None:
        answer["status"] = status

    body = b"".join(app({"PATH_INFO": "/status", "REMOTE_ADDR": remote}, start_response))
    return answer["status"], body


def test_only_loopback_peers_unless_remote_is_allowed() -> None:
    page = StatusPage(lambda: {"queue": {"depth": 2}})
    page.remember(report(sequence=7))
    local = status_app(page, allow_remote=False)
    assert call(local, "10.1.2.3")[0] == "403 Forbidden"
    assert call(local, "::ffff:10.1.2.3")[0] == "403 Forbidden"
    for peer in ("127.0.0.1", "127.8.9.10", "::1", "::ffff:127.0.0.1"):
        status, body = call(local, peer)
        assert status == "200 OK", peer
    document = json.loads(body)
    assert document["report"]["sequence"] == "7" and document["agent"]["queue"]["depth"] == 2
    assert call(status_app(page, allow_remote=True), "10.1.2.3")[0] == "200 OK"
    assert not is_loopback("") and not is_loopback("not-an-address")


def test_before_the_first_report_the_report_is_null() -> None:
    status, body = call(status_app(StatusPage(dict), allow_remote=False), "127.0.0.1")
    assert status == "200 OK" and json.loads(body) == {"agent": {}, "report": None}
