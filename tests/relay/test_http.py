"""/metrics negotiation: what Prometheus asks for, gzip, and clients we cannot serve."""

from __future__ import annotations

import gzip
import urllib.request
from collections.abc import Iterator

import pytest
from prometheus_client import CollectorRegistry

from kubensage_common.httpserver import HttpServer
from relay.enrich.kube import NoEnrichment
from relay.expose.http import make_app
from relay.expose.textcache import NodeTextCache
from relay.selfmetrics import RelayMetrics
from relay.series.profiles import parse_profiles
from relay.state.store import NodeStore
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
            registry, NodeTextCache(store, parse_profiles("native"), NoEnrichment()), lambda: False
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
