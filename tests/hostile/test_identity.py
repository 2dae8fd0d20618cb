"""Another node's name under each identity mode, and credentials revoked mid-stream.

Token file (tokens restricted to nodes), client certificates (the certificate names the
node), Kubernetes TokenReview against the fake API server (the token's pod's node, from
the review or from the pod). For each: the attacker is refused or its stream ended, and
the good agent keeps being acknowledged with its own series."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import grpc
import pytest

from kubensage_agent.wire.tls import ClientTls
from kubensage_lab.processes import RelayProcess, eventually
from tests.hostile.conftest import assert_unharmed, start_relay
from tests.support.fake_kube import FakeKubeApi, ServiceAccountToken, pod
from tests.support.hostile import (
    Answer,
    GoodAgent,
    attack,
    channel_credentials,
    hello_bytes,
    node_lines,
    report_bytes,
)
from tests.support.hostile import scrape as scrape_text
from tests.support.pki import CertificateAuthority
from tests.support.reports import report

SERVER_NAME = "relay.test"


def claim(node: str, agent_id: str = "evil-agent") -> list[bytes]:
    """A hello and one report for `node` (its CPU counter at 1, far below the good one's)."""
    fake = report(node=node, agent_id=agent_id, sequence=1)
    fake.node.cpu_seconds_by_mode["user"] = 1.0
    return [hello_bytes(node, agent_id), report_bytes(fake)]


def revoked_mid_stream(
    relay: RelayProcess, node: str, open_stream: Callable[[], Answer], revoke: Callable[[], None]
) -> Answer:
    """Open a stream for `node` (served by no other) that would stay up for minutes, revoke
    its credentials once its report is served, and return how the relay ended it."""
    assert not node_lines(scrape_text(relay.metrics_url), node)
    answers: list[Answer] = []
    streaming = threading.Thread(target=lambda: answers.append(open_stream()), daemon=True)
    streaming.start()
    eventually(lambda: node_lines(scrape_text(relay.metrics_url), node), timeout=30)
    revoke()
    streaming.join(timeout=90)
    assert answers, "the stream was not ended by the relay"
    return answers[0]


# -- bearer tokens restricted to nodes -----------------------------------------------------


@pytest.fixture(scope="module")
def token_relay(workdir: Path) -> Iterator[tuple[RelayProcess, Path]]:
    tokens = workdir / "relay-tokens"
    tokens.write_text("t-good good-node\nt-evil evil-node\nt-doomed doomed-node\n")
    relay = start_relay(workdir, "relay-tokens", "--token-file", str(tokens))
    try:
        yield relay, tokens
    finally:
        relay.stop()


@pytest.fixture(scope="module")
def token_agent(token_relay: tuple[RelayProcess, Path], workdir: Path) -> Iterator[GoodAgent]:
    token = workdir / "good-token"
    token.write_text("t-good\n")
    with GoodAgent(token_relay[0].address, token_file=token) as agent:
        agent.wait_for_acks(3)
        yield agent


def test_a_token_for_one_node_cannot_report_for_another(
    token_relay: tuple[RelayProcess, Path], token_agent: GoodAgent
) -> None:
    relay, _ = token_relay
    assert attack(relay.address, claim("good-node"), token="t-evil").code == (
        grpc.StatusCode.PERMISSION_DENIED
    )
    assert attack(relay.address, claim("good-node"), token="guess").code == (
        grpc.StatusCode.UNAUTHENTICATED
    )
    assert attack(relay.address, claim("good-node")).code == grpc.StatusCode.UNAUTHENTICATED
    assert attack(relay.address, claim("evil-node"), token="t-evil").acks == [1]  # its own
    assert_unharmed(relay, token_agent)
    log = relay.service.log()
    assert "token on line 2" in log and "not for node good-node" in log


def test_a_token_removed_from_the_file_ends_its_open_stream(
    token_relay: tuple[RelayProcess, Path], token_agent: GoodAgent
) -> None:
    relay, tokens = token_relay
    answer = revoked_mid_stream(
        relay,
        "doomed-node",
        lambda: attack(relay.address, claim("doomed-node"), token="t-doomed", hold_open=300),
        lambda: tokens.write_text("t-good good-node\nt-evil evil-node\n"),
    )
    assert answer.code == grpc.StatusCode.UNAUTHENTICATED, answer
    assert attack(relay.address, claim("doomed-node"), token="t-doomed").code == (
        grpc.StatusCode.UNAUTHENTICATED
    )
    assert_unharmed(relay, token_agent)


# -- client certificates ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def pki(workdir: Path) -> dict[str, object]:
    ca = CertificateAuthority(workdir / "pki")
    return {
        "ca": ca,
        "server": ca.issue(SERVER_NAME, server=True),
        "good": ca.issue("good-node", server=False),
        "evil": ca.issue("evil-node", server=False),
        "crl": ca.write_crl(workdir / "pki" / "crl.pem", []),
    }


def credentials_for(pki: dict[str, object], name: str) -> grpc.ChannelCredentials:
    ca, issued = pki["ca"], pki[name]
    return channel_credentials(str(ca.cert_path), str(issued.cert), str(issued.key))  # type: ignore[attr-defined]


@pytest.fixture(scope="module")
def mtls_relay(workdir: Path, pki: dict[str, object]) -> Iterator[RelayProcess]:
    server, ca = pki["server"], pki["ca"]
    relay = start_relay(
        workdir,
        "relay-mtls",
        *("--tls-cert-file", str(server.cert), "--tls-key-file", str(server.key)),  # type: ignore[attr-defined]
        *("--tls-client-ca-file", str(ca.cert_path)),  # type: ignore[attr-defined]
        *("--tls-client-crl-file", str(pki["crl"])),
    )
    try:
        yield relay
    finally:
        relay.stop()


def test_a_certificate_for_one_node_cannot_report_for_another_and_revocation_ends_it(
    mtls_relay: RelayProcess, pki: dict[str, object]
) -> None:
    evil = credentials_for(pki, "evil")
    ca, good_issued = pki["ca"], pki["good"]
    good_tls = ClientTls(
        str(ca.cert_path),  # type: ignore[attr-defined]
        str(good_issued.cert),  # type: ignore[attr-defined]
        str(good_issued.key),  # type: ignore[attr-defined]
        server_name=SERVER_NAME,
    )
    with GoodAgent(mtls_relay.address, tls=good_tls) as good:
        good.wait_for_acks(3)
        refused = attack(
            mtls_relay.address, claim("good-node"), credentials=evil, server_name=SERVER_NAME
        )
        assert refused.code == grpc.StatusCode.PERMISSION_DENIED, refused
        answer = revoked_mid_stream(
            mtls_relay,
            "evil-node",
            lambda: attack(
                mtls_relay.address,
                claim("evil-node"),
                credentials=evil,
                server_name=SERVER_NAME,
                hold_open=300,
            ),
            lambda: pki["ca"].write_crl(pki["crl"], [pki["evil"]]),  # type: ignore[attr-defined]
        )
        assert answer.code == grpc.StatusCode.UNAUTHENTICATED and "revoked" in answer.details
        assert_unharmed(mtls_relay, good)


# -- Kubernetes TokenReview -------------------------------------------------------------------


@pytest.fixture(scope="module")
def kube(workdir: Path) -> Iterator[tuple[FakeKubeApi, Path]]:
    api = FakeKubeApi().start()
    for node in ("good-node", "evil-node", "old-node", "doomed-node"):
        api.put("/api/v1/pods", pod(f"agent-{node}", "kubensage", node=node))

    def agent_token(
        node: str, *, with_node: bool = True, **overrides: object
    ) -> ServiceAccountToken:
        fields: dict[str, object] = {
            "namespace": "kubensage",
            "service_account": "kubensage-agent",
            "audiences": ("kubensage",),
            "pod": (f"agent-{node}", f"uid-kubensage-agent-{node}"),
            "node": node if with_node else None,
        }
        fields.update(overrides)
        return ServiceAccountToken(**fields)  # type: ignore[arg-type]

    api.issue_token("sa-good", agent_token("good-node"))
    api.issue_token("sa-evil", agent_token("evil-node"))
    api.issue_token("sa-old-cluster", agent_token("old-node", with_node=False))
    api.issue_token("sa-doomed", agent_token("doomed-node"))
    api.issue_token("sa-other-audience", agent_token("evil-node", audiences=("vault",)))
    api.issue_token("sa-other-account", agent_token("evil-node", service_account="default"))
    try:
        yield api, api.write_kubeconfig(workdir / "kubeconfig")
    finally:
        api.stop()


@pytest.fixture(scope="module")
def review_relay(workdir: Path, kube: tuple[FakeKubeApi, Path]) -> Iterator[RelayProcess]:
    relay = start_relay(workdir, "relay-review", "--token-review", "--kubeconfig", str(kube[1]))
    try:
        yield relay
    finally:
        relay.stop()


@pytest.mark.parametrize(
    ("token", "node", "code"),
    [
        ("sa-evil", "good-node", grpc.StatusCode.PERMISSION_DENIED),
        ("sa-old-cluster", "good-node", grpc.StatusCode.PERMISSION_DENIED),  # node from the pod
        ("sa-other-account", "evil-node", grpc.StatusCode.PERMISSION_DENIED),
        ("sa-other-audience", "evil-node", grpc.StatusCode.UNAUTHENTICATED),
        ("forged", "evil-node", grpc.StatusCode.UNAUTHENTICATED),
        ("sa-evil", "evil-node", grpc.StatusCode.OK),
        ("sa-old-cluster", "old-node", grpc.StatusCode.OK),
    ],
)
def test_a_service_account_token_reports_only_for_its_pods_node(
    review_relay: RelayProcess, workdir: Path, token: str, node: str, code: grpc.StatusCode
) -> None:
    good_token = workdir / "sa-good-token"
    good_token.write_text("sa-good\n")
    with GoodAgent(review_relay.address, token_file=good_token) as good:
        good.wait_for_acks(2)
        answer = attack(review_relay.address, claim(node, f"agent-{token}"), token=token)
        assert answer.code == code, answer
        assert_unharmed(review_relay, good)


def test_a_deleted_pods_token_ends_its_open_stream(
    review_relay: RelayProcess, kube: tuple[FakeKubeApi, Path]
) -> None:
    api, _ = kube
    answer = revoked_mid_stream(
        review_relay,
        "doomed-node",
        lambda: attack(
            review_relay.address, claim("doomed-node"), token="sa-doomed", hold_open=300
        ),
        lambda: api.revoke_token("sa-doomed"),
    )
    assert answer.code == grpc.StatusCode.UNAUTHENTICATED, answer
