"""The Prometheus client's bounds: answers too large, malformed or refused become
PrometheusError with a reason for the counters, never a crash."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from advisor.prometheus import PrometheusClient, PrometheusError


class Canned:
    """A loopback server answering every POST with one status and body."""

    def __init__(self) -> None:
        self.status = 200
        self.body = b""
        self.queries: list[str] = []
        self.headers: list[dict[str, str]] = []
        canned = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                canned.queries.append(self.rfile.read(int(self.headers["Content-Length"])).decode())
                canned.headers.append(dict(self.headers.items()))
                self.send_response(canned.status)
                self.send_header("Content-Length", str(len(canned.body)))
                self.end_headers()
                self.wfile.write(canned.body)

            def log_message(self, format: str, *args: Any) -> None:
                """Quiet."""

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_port}/prefix"

    def answer(self, payload: Any, status: int = 200) -> None:
        self.status = status
        self.body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()


@pytest.fixture
def canned() -> Iterator[Canned]:
    server = Canned()
    yield server
    server.server.shutdown()
    server.server.server_close()


def vector(count: int, label: str = "x") -> dict[str, Any]:
    return {
        "status": "success",
        "data": {
            "resultType": "vector",
            "result": [
                {"metric": {"pod": f"{label}{i}"}, "value": [1, str(i)]} for i in range(count)
            ],
        },
    }


def test_a_vector_becomes_samples_and_the_query_carries_its_deadline(canned: Canned) -> None:
    canned.answer(vector(3))
    samples = PrometheusClient(canned.url, timeout_seconds=7).query("up", 1700000000)
    assert [(s.labels["pod"], s.value) for s in samples] == [("x0", 0.0), ("x1", 1.0), ("x2", 2.0)]
    assert "timeout=7s" in canned.queries[0] and "time=1700000000.000" in canned.queries[0]


def test_configured_headers_go_with_every_query(canned: Canned) -> None:
    canned.answer(vector(1))
    PrometheusClient(canned.url, headers={"X-Scope-OrgID": "team-a"}).query("up", 0)
    assert canned.headers[0]["X-Scope-OrgID"] == "team-a"


def test_more_series_than_allowed_is_refused(canned: Canned) -> None:
    canned.answer(vector(11))
    with pytest.raises(PrometheusError, match="matched 11 series, more than --max-series 10") as e:
        PrometheusClient(canned.url, max_series=10).query("up", 0)
    assert e.value.reason == "too_many_series"


def test_an_answer_past_the_byte_budget_is_not_read_whole(canned: Canned) -> None:
    canned.answer(vector(1, label="p" * 100_000))  # one series, far past 4 KiB
    with pytest.raises(PrometheusError, match="exceeds") as e:
        PrometheusClient(canned.url, max_series=1).query("up", 0)
    assert e.value.reason == "too_many_series"


def test_long_label_values_are_cut(canned: Canned) -> None:
    canned.answer(vector(1, label="w" * 3000))
    (sample,) = PrometheusClient(canned.url).query("up", 0)
    assert len(sample.labels["pod"]) == 1024


@pytest.mark.parametrize(
    ("payload", "status", "reason", "words"),
    [
        (b"<html>proxy error</html>", 502, "http_error", "answered 502 Bad Gateway: <html>"),
        (
            {"status": "error", "errorType": "bad_data", "error": "parse error"},
            400,
            "query_error",
            "answered 400 Bad Request: bad_data: parse error",
        ),
        (b"not json", 200, "bad_response", "did not answer as the Prometheus HTTP API does"),
        (
            {"status": "success", "data": {"resultType": "matrix", "result": []}},
            200,
            "bad_response",
            "'matrix', not a vector",
        ),
        (
            {"status": "success", "data": {"resultType": "vector", "result": [{"metric": {}}]}},
            200,
            "bad_response",
            "malformed sample",
        ),
    ],
)
def test_refusals_and_garbage_are_errors_with_a_reason(
    canned: Canned, payload: Any, status: int, reason: str, words: str
) -> None:
    canned.answer(payload, status)
    with pytest.raises(PrometheusError, match=words.replace("(", r"\(").replace(")", r"\)")) as e:
        PrometheusClient(canned.url).query("up", 0)
    assert e.value.reason == reason
