"""/metrics negotiation: what Prometheus asks for, gzip, and clients we cannot serve."""

from __future__ import annotations

import gzip
import http.client
import logging
import socket
import ssl
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from kubensage_common.httpserver import HttpServer, plain
from kubensage_lab.processes import eventually
from relay.enrich.kube import NoEnrichment
from relay.expose.http import make_app
from relay.expose.textcache import NodeTextCache
from relay.selfmetrics import RelayMetrics
from relay.series.profiles import parse_profiles
from relay.state.store import NodeStore
from tests.support.pki import CertificateAuthority
from tests.support.reports import report

PROMETHEUS_ACCEPT = (
    "application/openmetrics-text;version=1.0.0;q=0.5,application/openmetrics-"
    "text;version=0.0.1;q=0.4,text/plain;version=0.0.4;q=0.3,*/*;q=0.2"
)


@pytest.fixture
def server() -> Iterator[str]:
    store = NodeStore(grace_seconds=30)
    store.accept(report())
    registry = CollectorRegistry()
    RelayMetrics(registry)
    http = HttpServer(
        "127.0.0.1",
        0,
        make_app(
            registry,
            store,
            NodeTextCache(store, parse_profiles("native"), NoEnrichment()),
            lambda: False,
        ),
    )
    http.start()
    yield f"http://127.0.0.1:{http.port}"
    http.stop()


def get(url: str, **headers: str) -> tuple[int, dict[str, str], bytes]:
    request = urllib.request.Request(url, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read()


def test_prometheus_gets_text_format_gzipped_when_asked(server: str) -> None:
    status, headers, body = get(
        f"{server}/metrics", Accept=PROMETHEUS_ACCEPT, **{"Accept-Encoding": "gzip"}
    )
    assert status == 200
    assert headers["Content-Type"].startswith("text/plain; version=0.0.4")
    assert headers["Content-Encoding"] == "gzip"
    text = gzip.decompress(body).decode()
    assert "kubensage_relay_reports_received_total 0.0" in text
    assert 'kubensage_node_load1{node="node-a"} 0.5' in text
    _, plain_headers, plain = get(f"{server}/metrics")
    assert "Content-Encoding" not in plain_headers and plain.decode() == text


def test_client_accepting_only_openmetrics_is_told_so(server: str) -> None:
    status, _, body = get(f"{server}/metrics", Accept="application/openmetrics-text")
    assert status == 406 and b"text/plain" in body


def test_probes(server: str) -> None:
    assert get(f"{server}/healthz")[0] == 200
    assert get(f"{server}/readyz")[0] == 503  # ready() is False in this fixture
    assert get(f"{server}/nothing")[0] == 404


# -- the HTTP side is reachable by anyone: bounded and quiet ---------------------------


@pytest.fixture
def small_server() -> Iterator[HttpServer]:
    http = HttpServer(
        "127.0.0.1",
        0,
        lambda environ, start_response: plain(start_response, "200 OK", b"hello\n"),
        max_connections=3,
        read_timeout=1.0,
    )
    http.start()
    yield http
    http.stop()


def request(port: int, method: str) -> tuple[int, dict[str, str], bytes]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        connection.request(method, "/metrics", body=b"x" if method == "POST" else None)
        response = connection.getresponse()
        return response.status, dict(response.headers), response.read()
    finally:
        connection.close()


def answered(port: int) -> bool:
    try:
        return request(port, "GET")[0] == 200
    except (ConnectionError, http.client.HTTPException):
        return False


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "OPTIONS", "TRACE"])
def test_only_get_and_head_are_answered(small_server: HttpServer, method: str) -> None:
    status, headers, _ = request(small_server.port, method)
    assert status == 405 and headers["Allow"] == "GET, HEAD"


def test_head_gets_the_headers_without_the_body(small_server: HttpServer) -> None:
    status, headers, body = request(small_server.port, "HEAD")
    assert status == 200 and headers["Content-Length"] == "6" and body == b""
    assert request(small_server.port, "GET")[2] == b"hello\n"


def test_idle_connections_are_capped_and_timed_out_with_one_log_line(
    small_server: HttpServer,
    capfd: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING)
    idle = [socket.create_connection(("127.0.0.1", small_server.port)) for _ in range(3)]
    try:
        # every worker is held by a silent client: a fourth connection is closed at once
        extra = socket.create_connection(("127.0.0.1", small_server.port), timeout=5)
        assert extra.recv(1) == b""
        extra.close()
        eventually(lambda: small_server.refused_connections >= 1, timeout=10)
        # the silent clients are dropped after the read timeout; service resumes
        eventually(lambda: answered(small_server.port), timeout=15, every=0.3)
    finally:
        for sock in idle:
            sock.close()
    timeouts = [line for line in caplog.messages if "timed out" in line]
    assert len(timeouts) == 1  # one line for the host, not one per connection
    assert "Traceback" not in capfd.readouterr().err


def test_a_stalled_tls_handshake_does_not_block_others(tmp_path: Path) -> None:
    ca = CertificateAuthority(tmp_path)
    issued = ca.issue("relay.test", server=True)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(issued.cert, issued.key)
    http_server = HttpServer(
        "127.0.0.1",
        0,
        lambda environ, start_response: plain(start_response, "200 OK", b"hello\n"),
        context,
        read_timeout=30,
    )
    http_server.start()
    stalled = socket.create_connection(("127.0.0.1", http_server.port))  # never handshakes
    try:
        client = ssl.create_default_context(cafile=str(ca.cert_path))
        url = f"https://localhost:{http_server.port}/metrics"
        with urllib.request.urlopen(url, context=client, timeout=10) as response:
            assert response.read() == b"hello\n"
    finally:
        stalled.close()
        http_server.stop()
