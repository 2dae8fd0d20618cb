"""The relay process enriching from a fake API server via kubeconfig, through an API outage."""

from __future__ import annotations

import asyncio
import re
import time
from pathlib import Path

from kubensage_api.telemetry import telemetry_pb2 as tm
from kubensage_lab.processes import RelayProcess, free_port, http_get
from tests.support import fake_kube
from tests.support.fake_kube import FakeKubeApi
from tests.support.load import LoadResult, stream_reports
from tests.support.reports import container, pod, report


def metric_line(body: str, name: str, must_contain: str) -> str | None:
    for line in body.splitlines():
        if line.startswith(name + "{") and must_contain in line:
            return line
    return None


def wait_for_line(url: str, name: str, must_contain: str, timeout: float = 30) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status, body = http_get(url)
        line = metric_line(body, name, must_contain) if status == 200 else None
        if line:
            return line
        time.sleep(0.25)
    raise AssertionError(f"no {name} line with {must_contain!r} within {timeout}s")


def send(address: str, sequence: int) -> None:
    r = report(
        node="node-a",
        sequence=sequence,
        pods=[pod("checkout-7c9d-x1", "shop", containers=[container("app", "c1")])],
    )
    r.pods[0].uid = "uid-checkout"
    result = LoadResult()
    asyncio.run(
        # cancelled, not closed: the node stays on /metrics for the grace period
        stream_reports(
            address,
            tm.Hello(agent_id="agent-1", node_name="node-a"),
            [r],
            result,
            end_cleanly=False,
        )
    )
    assert result.acked == 1


def cluster(
    port: int, zone: str, first_revision: int = 100, **pod_resources: dict[str, str]
) -> FakeKubeApi:
    """The API server's contents: node-a in `zone`, a Deployment's ReplicaSet and its pod."""
    api = FakeKubeApi(port=port, first_revision=first_revision).start()
    api.put("/api/v1/nodes", fake_kube.node("node-a", zone=zone))
    api.put(
        "/apis/apps/v1/replicasets",
        fake_kube.owned("checkout-7c9d", "shop", ("Deployment", "checkout")),
    )
    api.put(
        "/api/v1/pods",
        fake_kube.pod(
            "checkout-7c9d-x1",
            "shop",
            owner=("ReplicaSet", "checkout-7c9d"),
            uid="uid-checkout",
            **pod_resources,
        ),
    )
    return api


def test_relay_enriches_and_keeps_serving_through_an_api_outage(tmp_path: Path) -> None:
    api_port = free_port()
    api = cluster(
        api_port,
        "eu-west-1a",
        requests={"cpu": "500m", "memory": "256Mi"},
        limits={"memory": "1Gi"},
    )
    kubeconfig = api.write_kubeconfig(tmp_path / "kubeconfig", cluster="prod-eu")
    relay = RelayProcess(tmp_path, "relay", "--kubeconfig", str(kubeconfig))
    grpc_port, metrics_port = relay.grpc, relay.http
    url = f"http://127.0.0.1:{metrics_port}/metrics"
    try:
        relay.start()
        relay.service.wait_http(f"http://127.0.0.1:{metrics_port}/readyz")
        send(f"127.0.0.1:{grpc_port}", 1)
        cpu = wait_for_line(
            url, "kubensage_container_cpu_usage_seconds_total", 'workload="checkout"'
        )
        assert 'workload_kind="Deployment"' in cpu
        requests = wait_for_line(url, "kubensage_container_resource_requests", 'resource="cpu"')
        assert requests.endswith(" 0.5")
        assert wait_for_line(
            url, "kubensage_container_resource_limits", 'resource="memory"'
        ).endswith(" 1.073741824e+09")
        node = wait_for_line(url, "kubensage_node_info", 'zone="eu-west-1a"')
        for expected in (
            'region="eu-west-1"',
            'instance_type="m5.large"',
            'provider="aws"',
            'cluster="prod-eu"',
        ):
            assert expected in node

        api.stop()  # the API server goes away: last known metadata keeps being served
        wait_for_line(url, "kubensage_relay_kube_errors_total", 'resource="pods"')
        errors = metric_line(
            http_get(url)[1], "kubensage_relay_kube_errors_total", 'resource="pods"'
        )
        assert errors and not errors.endswith(" 0.0")
        assert 'workload="checkout"' in (
            metric_line(http_get(url)[1], "kubensage_container_cpu_usage_seconds_total", "checkout")
            or ""
        )

        api = cluster(api_port, "eu-west-1b", first_revision=50_000)
        wait_for_line(url, "kubensage_node_info", 'zone="eu-west-1b"', timeout=90)
    finally:
        relay.stop()
        api.stop()
    assert re.search(r"Kubernetes enrichment on", relay.service.log())
