"""Kubernetes enrichment: projections, owners, and informers against a fake API server
driven through the real `kubernetes` client."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from kubernetes import client
from prometheus_client.parser import text_string_to_metric_families

from kubensage_common.backoff import Backoff
from kubensage_lab.processes import eventually, free_port
from relay.enrich.informer import Informer
from relay.enrich.kube import KubeEnrichment, label_filter
from relay.enrich.objects import (
    Owner,
    PodInfo,
    name_key,
    project_node,
    project_pod,
    provider_of,
    uid_key,
)
from relay.enrich.workloads import resolve_workload
from relay.expose.textcache import NodeTextCache
from relay.series.labels import pod_label_names
from relay.series.profiles import parse_profiles
from relay.state.store import NodeStore
from tests.support import fake_kube
from tests.support.fake_kube import FakeKubeApi
from tests.support.reports import container, pod, report

PODS, NODES = "/api/v1/pods", "/api/v1/nodes"
RS, JOBS = "/apis/apps/v1/replicasets", "/apis/batch/v1/jobs"


def api_for(fake: FakeKubeApi) -> client.ApiClient:
    configuration = client.Configuration()
    configuration.host = fake.url
    return client.ApiClient(configuration)


def pod_info(owner: tuple[str, str] | None, template_hash: str = "") -> PodInfo:
    labels = {"pod-template-hash": template_hash} if template_hash else {}
    return project_pod(fake_kube.pod("p", "ns", owner=owner, labels=labels), lambda k: False)


# -- projections -------------------------------------------------------------------


def test_pod_projection_keeps_resources_and_allowed_labels_only() -> None:
    info = project_pod(
        fake_kube.pod(
            "web",
            "shop",
            owner=("ReplicaSet", "web-5d9f"),
            qos="Guaranteed",
            labels={"app": "web", "secret-ish": "x", "pod-template-hash": "5d9f"},
            requests={"cpu": "250m", "memory": "128Mi"},
            limits={"cpu": "1", "memory": "1Gi"},
            priority_class="high",
            host_network=True,
        ),
        label_filter("app"),
    )
    assert info.owner == Owner("ReplicaSet", "web-5d9f")
    assert info.labels == (("app", "web"),)
    assert (info.qos_class, info.priority_class, info.host_network) == ("Guaranteed", "high", True)
    (spec,) = info.containers
    assert (spec.cpu_request, spec.cpu_limit) == (0.25, 1.0)
    assert (spec.memory_request, spec.memory_limit) == (128 * 2**20, 2**30)


def test_bad_quantity_is_absent_not_fatal() -> None:
    info = project_pod(fake_kube.pod("p", requests={"cpu": "lots"}), lambda k: False)
    assert info.containers[0].cpu_request is None


@pytest.mark.parametrize(
    ("provider_id", "provider"),
    [
        ("aws:///eu-west-1a/i-0abc", "aws"),
        ("gce://proj/europe-west1-b/vm-1", "gce"),
        ("azure:///subscriptions/x/vm", "azure"),
        ("kind://docker/kind/kind-worker", "kind"),
        ("openstack:///abc", "openstack"),
        ("", ""),
        ("garbage", ""),
    ],
)
def test_provider_from_provider_id(provider_id: str, provider: str) -> None:
    assert provider_of(provider_id) == provider


def test_node_projection_reads_topology_with_legacy_fallback() -> None:
    current = project_node(fake_kube.node("n1"))
    assert (current.region, current.zone, current.instance_type) == (
        "eu-west-1",
        "eu-west-1a",
        "m5.large",
    )
    assert (current.provider, current.kubelet_version) == ("aws", "v1.30.2")
    legacy = project_node(
        {
            "metadata": {
                "name": "old",
                "labels": {
                    "failure-domain.beta.kubernetes.io/zone": "z1",
                    "beta.kubernetes.io/instance-type": "t2.micro",
                    "alpha.eksctl.io/cluster-name": "prod",
                },
            }
        }
    )
    assert (legacy.zone, legacy.instance_type, legacy.cluster_name) == ("z1", "t2.micro", "prod")


def test_label_names_are_sanitized_without_collisions() -> None:
    names = pod_label_names(["app.kubernetes.io/name", "app_kubernetes_io/name", "team"])
    assert names["team"] == "label_team"
    assert names["app.kubernetes.io/name"] == "label_app_kubernetes_io_name"
    other = names["app_kubernetes_io/name"]
    assert (
        other.startswith("label_app_kubernetes_io_name_")
        and other != names["app.kubernetes.io/name"]
    )
    assert pod_label_names(["x/é"]) == {"x/é": "label_x__"}


# -- owners ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("owner", "rs", "jobs", "expected"),
    [
        (
            ("ReplicaSet", "web-5d9f"),
            {"ns/web-5d9f": Owner("Deployment", "web")},
            {},
            ("Deployment", "web"),
        ),
        (("ReplicaSet", "web-5d9f"), {}, {}, ("Deployment", "web")),  # hash fallback
        (("ReplicaSet", "solo"), {}, {}, ("ReplicaSet", "solo")),
        (("StatefulSet", "db"), {}, {}, ("StatefulSet", "db")),
        (("DaemonSet", "logs"), {}, {}, ("DaemonSet", "logs")),
        (("Job", "once"), {}, {}, ("Job", "once")),
        (
            ("Job", "nightly-2891"),
            {},
            {"ns/nightly-2891": Owner("CronJob", "nightly")},
            ("CronJob", "nightly"),
        ),
        (None, {}, {}, ("", "")),
    ],
)
def test_workload_resolution_for_every_kind(owner, rs, jobs, expected) -> None:  # type: ignore[no-untyped-def]
    template_hash = "5d9f" if owner and owner[1] == "web-5d9f" else ""
    assert resolve_workload(pod_info(owner, template_hash), rs, jobs) == expected


# -- informers against the fake API server -----------------------------------------


@pytest.fixture
def fake() -> Iterator[FakeKubeApi]:
    server = FakeKubeApi().start()
    yield server
    server.stop()


def informer_for(fake: FakeKubeApi) -> Informer[PodInfo]:
    return informer_for_url(fake.url)


def test_informer_lists_in_pages_then_follows_the_watch(fake: FakeKubeApi) -> None:
    for i in range(1100):
        fake.put(PODS, fake_kube.pod(f"p{i:04d}"))
    informer = informer_for(fake)
    informer.start()
    try:
        eventually(informer.synced.is_set)
        assert len(informer.items) == 1100
        assert sum("continue=" in r for r in fake.requests) == 2  # three pages of 500
        fake.put(PODS, fake_kube.pod("late", labels={"v": "1"}))
        eventually(lambda: "uid-default-late" in informer.items)
        fake.put(PODS, fake_kube.pod("late", labels={"v": "2"}))
        eventually(lambda: informer.items["uid-default-late"].labels == (("v", "2"),))
        fake.delete(PODS, "default", "p0000")
        eventually(lambda: "uid-default-p0000" not in informer.items)
    finally:
        informer.stop()
    assert informer.stats.lists == 1


def test_informer_relists_on_410_gone_and_survives_dropped_watches(fake: FakeKubeApi) -> None:
    fake.put(PODS, fake_kube.pod("a"))
    informer = informer_for(fake)
    informer.start()
    try:
        eventually(informer.synced.is_set)
        fake.drop_watches()  # broken connection: watch again from the last version
        fake.put(PODS, fake_kube.pod("b"))
        eventually(lambda: "uid-default-b" in informer.items)
        assert informer.stats.gone == 0
        fake.compact()
        fake.drop_watches()  # the next watch asks for a version the server forgot
        fake.put(PODS, fake_kube.pod("c"))
        eventually(lambda: "uid-default-c" in informer.items)
        eventually(lambda: informer.stats.gone >= 1)
        assert informer.stats.lists >= 2
    finally:
        informer.stop()


def test_api_down_at_start_then_up_and_down_again_keeps_last_state() -> None:
    port = free_port()
    fake = FakeKubeApi(port=port)
    informer = informer_for_url(f"http://127.0.0.1:{port}")
    informer.start()
    try:
        eventually(lambda: informer.stats.errors >= 1)
        assert not informer.synced.is_set()
        fake.start()
        fake.put(PODS, fake_kube.pod("a"))
        eventually(lambda: "uid-default-a" in informer.items)
        fake.stop()  # API server outage: the cache keeps what it knew
        time.sleep(0.5)
        assert "uid-default-a" in informer.items
        errors_before = informer.stats.errors
        eventually(lambda: informer.stats.errors > errors_before)
        # back after losing its watch history: the informer gets 410 Gone and lists again
        fake = FakeKubeApi(port=port, first_revision=10_000).start()
        fake.put(PODS, fake_kube.pod("b"))
        eventually(lambda: set(informer.items) == {"uid-default-b"})
    finally:
        informer.stop()
        fake.stop()


def informer_for_url(url: str) -> Informer[PodInfo]:
    configuration = client.Configuration()
    configuration.host = url
    core = client.CoreV1Api(client.ApiClient(configuration))
    return Informer(
        "pods",
        core.list_pod_for_all_namespaces,
        lambda o: project_pod(o, lambda k: True),
        uid_key,
        backoff=Backoff(initial=0.05, maximum=0.3),
        watch_seconds=5,
    )


# -- the scrape a user sees --------------------------------------------------------


def scrape(store: NodeStore, enrichment: KubeEnrichment) -> dict[str, list[dict[str, str]]]:
    found: dict[str, list[dict[str, str]]] = {}
    for family in text_string_to_metric_families(
        NodeTextCache(store, parse_profiles("native"), enrichment).text()
    ):
        for sample in family.samples:
            found.setdefault(sample.name, []).append({**sample.labels, "_value": str(sample.value)})
    return found


def only(samples: list[dict[str, str]], **match: str) -> dict[str, str]:
    (hit,) = [s for s in samples if all(s.get(k) == v for k, v in match.items())]
    return hit


@pytest.fixture
def enriched(fake: FakeKubeApi) -> Iterator[KubeEnrichment]:
    enrichment = KubeEnrichment(api_for(fake), pod_labels="app,team", cluster_name="")
    for informer in enrichment.informers:
        informer._backoff = Backoff(initial=0.05, maximum=0.3)
    yield enrichment
    enrichment.stop()


def test_deployment_pod_gets_workload_requests_limits_and_node_topology(
    fake: FakeKubeApi, enriched: KubeEnrichment
) -> None:
    fake.put(NODES, fake_kube.node("node-a"))
    fake.put(RS, fake_kube.owned("checkout-7c9d", "shop", ("Deployment", "checkout")))
    fake.put(
        PODS,
        fake_kube.pod(
            "checkout-7c9d-x1",
            "shop",
            owner=("ReplicaSet", "checkout-7c9d"),
            labels={"app": "checkout", "team": "payments", "other": "no"},
            requests={"cpu": "500m", "memory": "256Mi"},
            limits={"cpu": "2", "memory": "1Gi"},
            uid="uid-checkout",
        ),
    )
    enriched.start()
    eventually(enriched.synced)
    assert enriched.ready()
    r = report(pods=[pod("checkout-7c9d-x1", "shop", containers=[container("app", "c1")])])
    r.pods[0].uid = "uid-checkout"
    store = NodeStore(grace_seconds=30)
    store.accept(r)
    got = scrape(store, enriched)
    cpu = only(got["kubensage_container_cpu_usage_seconds_total"], pod="checkout-7c9d-x1")
    assert (cpu["workload"], cpu["workload_kind"]) == ("checkout", "Deployment")
    requests = got["kubensage_container_resource_requests"]
    assert float(only(requests, resource="cpu", unit="core")["_value"]) == 0.5
    assert float(only(requests, resource="memory", unit="byte")["_value"]) == 256 * 2**20
    limits = got["kubensage_container_resource_limits"]
    assert float(only(limits, resource="memory")["_value"]) == 2**30
    info = only(got["kubensage_pod_info"], pod="checkout-7c9d-x1")
    assert (info["uid"], info["qos_class"], info["workload_kind"]) == (
        "uid-checkout",
        "Burstable",
        "Deployment",
    )
    labels = only(got["kubensage_pod_labels"], pod="checkout-7c9d-x1")
    assert (labels["label_app"], labels["label_team"]) == ("checkout", "payments")
    assert "label_other" not in labels
    node = only(got["kubensage_node_info"], node="node-a")
    assert (node["region"], node["zone"], node["instance_type"], node["provider"]) == (
        "eu-west-1",
        "eu-west-1a",
        "m5.large",
        "aws",
    )
    assert node["kubelet_version"] == "v1.30.2"


def test_pod_before_and_after_its_report_deletion_and_node_label_change(
    fake: FakeKubeApi, enriched: KubeEnrichment
) -> None:
    fake.put(NODES, fake_kube.node("node-a", zone="z1"))
    enriched.start()
    eventually(enriched.synced)
    store = NodeStore(grace_seconds=30)
    r = report(pods=[pod("db-0", "data", containers=[container("pg", "c1")])])
    r.pods[0].uid = "uid-db-0"
    store.accept(r)
    # the report is exposed at once, before the API knows the pod
    first = only(scrape(store, enriched)["kubensage_container_cpu_usage_seconds_total"], pod="db-0")
    assert first["workload"] == ""
    fake.put(PODS, fake_kube.pod("db-0", "data", owner=("StatefulSet", "db"), uid="uid-db-0"))
    eventually(lambda: enriched.pod("uid-db-0") is not None)
    later = only(scrape(store, enriched)["kubensage_container_cpu_usage_seconds_total"], pod="db-0")
    assert (later["workload"], later["workload_kind"]) == ("db", "StatefulSet")
    fake.put(NODES, fake_kube.node("node-a", zone="z2"))
    eventually(lambda: (enriched.node("node-a") or project_node(fake_kube.node("x"))).zone == "z2")
    assert only(scrape(store, enriched)["kubensage_node_info"], node="node-a")["zone"] == "z2"
    fake.delete(PODS, "data", "db-0")
    eventually(lambda: enriched.pod("uid-db-0") is None)
    gone = only(scrape(store, enriched)["kubensage_container_cpu_usage_seconds_total"], pod="db-0")
    assert gone["workload"] == ""


def test_ready_waits_for_first_sync_only_up_to_the_timeout() -> None:
    configuration = client.Configuration()
    configuration.host = f"http://127.0.0.1:{free_port()}"  # nothing listens
    enrichment = KubeEnrichment(client.ApiClient(configuration), sync_timeout_seconds=0.5)
    enrichment.start()
    try:
        assert not enrichment.ready()
        eventually(enrichment.ready, timeout=5)
        assert not enrichment.synced()
    finally:
        enrichment.stop()


def test_node_key_is_the_name() -> None:
    assert name_key(fake_kube.node("n7")) == "n7"
