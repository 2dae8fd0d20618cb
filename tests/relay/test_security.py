"""TLS, mutual TLS, bearer tokens with rotation, /metrics auth, and the plaintext policy."""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import bcrypt
import grpc
import pytest
from prometheus_client import CollectorRegistry, Counter

from kubensage_agent.push.queue import ReportQueue
from kubensage_agent.push.stream import StreamSender
from kubensage_agent.wire.tls import ClientTls
from kubensage_api.telemetry import telemetry_pb2 as tm
from kubensage_common.httpserver import HttpServer
from kubensage_common.kubeclient import load_api_client
from kubensage_common.tls import server_credentials
from kubensage_lab.processes import http_status
from relay.enrich.kube import NoEnrichment
from relay.expose.http import make_app
from relay.expose.textcache import NodeTextCache
from relay.expose.webconfig import BasicAuth, load_web_config, protect
from relay.ingest.auth import ANY_NODE, AuthRefusedError, NodeScope, Peer
from relay.ingest.auth_mtls import ClientCertificates
from relay.ingest.auth_tokenfile import TokenFile, parse_token_file
from relay.ingest.auth_tokenreview import TokenReviewer
from relay.series.profiles import parse_profiles
from relay.state.store import NodeStore
from tests.support import fake_kube
from tests.support.fake_kube import FakeKubeApi, ServiceAccountToken
from tests.support.inprocess_relay import InProcessRelay
from tests.support.pki import CertificateAuthority
from tests.support.reports import report

HELLO = tm.Hello(agent_id="agent-1", node_name="node-a")


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    folder = tmp_path_factory.mktemp("pki")
    ca = CertificateAuthority(folder)
    rogue = CertificateAuthority(folder / "rogue", "someone else")
    return {
        "ca": ca,
        "server": ca.issue("relay.test", server=True),
        "client": ca.issue("node-a", server=False),
        "san_client": ca.issue("agent", server=False, dns_names=("node-a",)),
        "other_node": ca.issue("node-b", server=False),
        "rogue_client": rogue.issue("intruder", server=False),
    }


async def deliver(
    relay: InProcessRelay,
    sender_for: Callable[[ReportQueue], StreamSender],
    count: int = 3,
    wait: float = 10.0,
) -> StreamSender:
    """Run a sender against the relay until `count` reports are acked or `wait` passes."""
    queue = ReportQueue(100)
    sender = sender_for(queue)
    task = asyncio.create_task(sender.run())
    for sequence in range(1, count + 1):
        queue.put(report(sequence=sequence))
    loop = asyncio.get_running_loop()
    deadline = loop.time() + wait
    while len(queue) and loop.time() < deadline:
        await asyncio.sleep(0.05)
    await sender.flush_and_close(0.5)
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    return sender


def sender_factory(
    relay: InProcessRelay, **kwargs: object
) -> Callable[[ReportQueue], StreamSender]:
    return lambda queue: StreamSender(
        relay.address, lambda: HELLO, queue, lambda s: None, 1 << 20, **kwargs
    )  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("client_name", "delivered"), [("client", 3), ("san_client", 3), ("other_node", 0)]
)
def test_mutual_tls_delivers_only_for_the_node_the_certificate_names(
    pki: dict,  # type: ignore[type-arg]
    client_name: str,
    delivered: int,
) -> None:
    server, client, ca = pki["server"], pki[client_name], pki["ca"]

    async def scenario() -> tuple[float, float]:
        creds = server_credentials(str(server.cert), str(server.key), str(ca.cert_path))
        binding = ClientCertificates(ca.cert_path)
        async with InProcessRelay(credentials=creds, authenticators=[binding]) as relay:
            await deliver(
                relay,
                sender_factory(
                    relay,
                    tls=ClientTls(
                        str(ca.cert_path), str(client.cert), str(client.key), "relay.test"
                    ),
                ),
                wait=10.0 if delivered else 2.0,
            )
            return (
                relay.value("kubensage_relay_reports_received_total"),
                relay.value("kubensage_relay_auth_failures_total", reason="wrong_node"),
            )

    received, wrong_node = asyncio.run(scenario())
    assert received == delivered
    assert (wrong_node > 0) == (delivered == 0)


@pytest.mark.parametrize("client_name", [None, "rogue_client"])
def test_mutual_tls_refuses_clients_without_a_trusted_certificate(
    pki: dict,
    client_name: str | None,  # type: ignore[type-arg]
) -> None:
    server, ca = pki["server"], pki["ca"]
    client = pki[client_name] if client_name else None

    async def scenario() -> tuple[float, int]:
        creds = server_credentials(str(server.cert), str(server.key), str(ca.cert_path))
        async with InProcessRelay(credentials=creds) as relay:
            sender = await deliver(
                relay,
                sender_factory(
                    relay,
                    tls=ClientTls(
                        str(ca.cert_path),
                        str(client.cert) if client else None,
                        str(client.key) if client else None,
                        "relay.test",
                    ),
                ),
                wait=2.0,
            )
            return relay.value("kubensage_relay_reports_received_total"), sender.reconnects_total

    received, _ = asyncio.run(scenario())
    assert received == 0


def test_agent_refuses_a_relay_certificate_from_another_ca(pki: dict, tmp_path: Path) -> None:  # type: ignore[type-arg]
    impostor_ca = CertificateAuthority(tmp_path / "impostor")
    impostor = impostor_ca.issue("relay.test", server=True)

    async def scenario() -> float:
        creds = server_credentials(str(impostor.cert), str(impostor.key), None)
        async with InProcessRelay(credentials=creds) as relay:
            await deliver(
                relay,
                sender_factory(
                    relay,
                    tls=ClientTls(str(pki["ca"].cert_path), server_name="relay.test"),
                ),
                wait=2.0,
            )
            return relay.value("kubensage_relay_reports_received_total")

    assert asyncio.run(scenario()) == 0


def test_bearer_tokens_wrong_missing_and_rotated_without_restart(tmp_path: Path) -> None:
    relay_tokens = tmp_path / "relay-tokens"
    relay_tokens.write_text("s3cret-one\n")
    agent_token = tmp_path / "agent-token"

    async def scenario() -> dict[str, float]:
        async with InProcessRelay(tokens=TokenFile(relay_tokens)) as relay:
            agent_token.write_text("wrong\n")
            await deliver(relay, sender_factory(relay, token_file=agent_token), wait=1.5)
            await deliver(relay, sender_factory(relay), wait=1.5)
            agent_token.write_text("s3cret-one\n")
            await deliver(relay, sender_factory(relay, token_file=agent_token), count=2)
            # rotation: the relay file now holds only a new token; both sides pick it up live
            relay_tokens.write_text("s3cret-two-longer\n")
            agent_token.write_text("s3cret-two-longer\n")
            queue_sender = sender_factory(relay, token_file=agent_token)
            await deliver(relay, lambda q: _resequenced(queue_sender(q), 10), count=2)
            return {
                "received": relay.value("kubensage_relay_reports_received_total"),
                "invalid": relay.value("kubensage_relay_auth_failures_total", reason="invalid"),
                "missing": relay.value("kubensage_relay_auth_failures_total", reason="missing"),
            }

    result = asyncio.run(scenario())
    assert result["invalid"] >= 1 and result["missing"] >= 1
    assert result["received"] == 4


def _resequenced(sender: StreamSender, offset: int) -> StreamSender:
    """Reports of a later agent run carry higher sequence numbers; shift the test's."""
    original_put = sender.queue.put

    def put(r: tm.Metrics) -> None:
        r.sequence += offset
        original_put(r)

    sender.queue.put = put  # type: ignore[method-assign]
    return sender


def test_metrics_endpoint_with_tls_and_basic_auth(pki: dict, tmp_path: Path) -> None:  # type: ignore[type-arg]
    server = pki["server"]
    hashed = bcrypt.hashpw(b"scrape-pass", bcrypt.gensalt(rounds=4)).decode()
    config_file = tmp_path / "web.yml"
    config_file.write_text(
        f"tls_server_config:\n  cert_file: {server.cert}\n  key_file: {server.key}\n"
        f"basic_auth_users:\n  prometheus: '{hashed}'\n"
    )
    web = load_web_config(str(config_file))
    registry = CollectorRegistry()
    Counter("kubensage_test_total", "x", registry=registry).inc()
    http = HttpServer(
        "127.0.0.1",
        0,
        protect(
            make_app(
                registry,
                empty := NodeStore(30),
                NodeTextCache(empty, parse_profiles("native"), NoEnrichment()),
                lambda: True,
            ),
            BasicAuth(web.users),
        ),
        web.ssl_context(),
    )
    http.start()
    context = ssl.create_default_context(cafile=str(pki["ca"].cert_path))
    base = f"https://localhost:{http.port}"

    def get(path: str, user: str | None = None, password: str = "") -> int:
        return http_status(base + path, context=context, user=user, password=password)

    try:
        assert get("/metrics") == 401
        assert get("/metrics", "prometheus", "wrong") == 401
        assert get("/metrics", "nobody", "scrape-pass") == 401
        assert get("/metrics", "prometheus", "scrape-pass") == 200
        assert get("/metrics", "prometheus", "scrape-pass") == 200  # served from the cache
        assert get("/healthz") == 200
    finally:
        http.stop()


def test_web_config_errors_are_clear(tmp_path: Path) -> None:
    bad = tmp_path / "web.yml"
    bad.write_text("tls_server_config:\n  cert_file: /x.crt\n")
    with pytest.raises(ValueError, match="both cert_file and key_file"):
        load_web_config(str(bad))
    bad.write_text("basic_auth: {}\n")
    with pytest.raises(ValueError, match="unknown keys"):
        load_web_config(str(bad))


@pytest.mark.parametrize(
    ("argv", "flag"),
    [
        (
            ["relay", "serve", "--listen-address", "0.0.0.0:0", "--metrics-address", "127.0.0.1:0"],
            "--listen-address",
        ),
        (
            ["kubensage_agent", "run", "--relay-address", "10.1.2.3:9190", "--state-dir", "/tmp"],
            "--relay-address",
        ),
    ],
)
def test_plaintext_off_loopback_needs_insecure(argv: list[str], flag: str) -> None:
    result = subprocess.run(
        [sys.executable, "-m", *argv], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 2
    assert f"{flag}" in result.stderr and "--insecure" in result.stderr


def test_token_file_lines_restrict_tokens_to_names_and_patterns() -> None:
    lines = parse_token_file(
        "# fleet tokens\n\nanyone\nt-a node-a\nt-workers worker-*, gpu-7  node-b\n"
    )
    assert [(line.number, line.token) for line in lines] == [
        (3, "anyone"),
        (4, "t-a"),
        (5, "t-workers"),
    ]
    assert lines[0].scope == ANY_NODE
    assert lines[1].scope == NodeScope(names=frozenset({"node-a"}))
    workers = lines[2].scope
    assert workers.allows("worker-17") and workers.allows("gpu-7") and workers.allows("node-b")
    assert not workers.allows("node-a") and not workers.allows("gpu-77")
    assert str(workers) == "gpu-7, node-b, worker-*"


def test_unrestricted_tokens_are_named_at_start(tmp_path: Path) -> None:
    path = tmp_path / "tokens"
    path.write_text("t-a node-a\nanyone\n")
    assert "UNRESTRICTED, may report as any node: line 2" in TokenFile(path).describe()
    path.write_text("t-a node-a\n")
    assert "UNRESTRICTED" not in TokenFile(path).describe()


# -- TokenReview: cached briefly, deadline on every call, an outage keeps what was granted --


def test_token_reviews_are_cached_and_survive_a_short_api_outage(tmp_path: Path) -> None:
    api = FakeKubeApi().start()
    api.put("/api/v1/pods", fake_kube.pod("agent-x", "kubensage", node="node-a"))
    api.issue_token(
        "sa-token",
        ServiceAccountToken(
            "kubensage",
            "kubensage-agent",
            ("kubensage",),
            ("agent-x", "uid-kubensage-agent-x"),
            None,
        ),
    )
    loaded = load_api_client(str(api.write_kubeconfig(tmp_path / "kubeconfig")))
    assert loaded is not None
    reviewer = TokenReviewer(loaded[0], timeout_seconds=2.0, cache_seconds=0.5)
    peer = Peer(address="ipv4:127.0.0.1:1", bearer="sa-token")

    async def scenario() -> None:
        grants = [await reviewer.authenticate(peer) for _ in range(5)]
        assert all(g.scope.allows("node-a") and not g.scope.allows("node-b") for g in grants)
        assert api.token_reviews == 1  # one review, then the cache
        assert api.requests.count("/api/v1/namespaces/kubensage/pods/agent-x") == 1
        await asyncio.sleep(0.6)
        api.stop()  # the API server is gone, and with it every open connection to it
        loaded[0].rest_client.pool_manager.clear()
        # a recently valid token keeps its grant; an unknown one is refused as unavailable
        assert (await reviewer.authenticate(peer)).scope.allows("node-a")
        with pytest.raises(AuthRefusedError) as refused:
            await reviewer.authenticate(Peer(address="x", bearer="never-seen"))
        assert refused.value.code == grpc.StatusCode.UNAVAILABLE

    try:
        asyncio.run(scenario())
    finally:
        api.stop()


def test_unknown_tokens_cannot_flood_the_api_server_with_reviews(tmp_path: Path) -> None:
    api = FakeKubeApi().start()
    loaded = load_api_client(str(api.write_kubeconfig(tmp_path / "kubeconfig")))
    assert loaded is not None
    # three new tokens at once, then almost none
    reviewer = TokenReviewer(loaded[0], reviews_per_second=0.001, review_burst=3)

    async def scenario() -> list[str]:
        reasons = []
        for attempt in range(10):
            with pytest.raises(AuthRefusedError) as refused:
                await reviewer.authenticate(Peer(address="x", bearer=f"guess-{attempt}"))
            reasons.append(refused.value.reason)
        return reasons

    try:
        reasons = asyncio.run(scenario())
    finally:
        api.stop()
    assert reasons == ["invalid"] * 3 + ["rate_limited"] * 7
    assert api.token_reviews == 3
