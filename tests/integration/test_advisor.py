"""kubensage-advisor against a real Prometheus holding 14 days of synthetic kubensage history.

What each workload should get is computed here from the raw samples written, with the
strategy of docs/advisor.md written out again, not by calling the advisor's code.
Tolerance: PromQL's rate() over an aligned 5-minute step of a counter that grows
linearly within the step is exact, max/min/count_over_time are exact, quantile_over_time
interpolates linearly between ranks as below, and increase() extrapolates numerator and
denominator of the throttled share by the same factor (same sample times, both counters
starting at 0, which is where Prometheus stops extrapolating a counter); so only
floating-point rounding is allowed (relative 1e-9), and recommendations, rounded up to
1m / 1Mi after that, must match exactly.
"""

from __future__ import annotations

import json
import math
import shutil
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from kubensage_lab.processes import (
    Prometheus,
    Service,
    eventually,
    free_port,
    http_get,
    python_module,
)
from tests.conftest import require
from tests.support.fake_kube import FakeKubeApi
from tests.support.history import DAY, MIB, STEP, Series, build_history, history_prometheus
from tests.support.shapes import WINDOW, shop

GIB = 1024 * MIB
CPU_PRICE = 0.031  # per core-hour
MEMORY_PRICE = 0.0042  # per GiB-hour
HOURS_PER_MONTH = 730
REL = 1e-9
RESOURCES = ("cpu", "memory")


@dataclass
class History:
    end: int
    series: list[Series]
    prometheus: Prometheus


@pytest.fixture(scope="module")
def history(tmp_path_factory: pytest.TempPathFactory) -> Iterator[History]:
    require(
        shutil.which("promtool") is not None and shutil.which("prometheus") is not None,
        "the advisor's acceptance tests need prometheus and promtool",
    )
    workdir = tmp_path_factory.mktemp("advisor-history")
    end = int(time.time()) // 3600 * 3600 - 3600
    series = build_history(shop(end), workdir, end)
    prometheus = history_prometheus(workdir)
    try:
        prometheus.start().wait_http(f"{prometheus.url}/-/ready")
        yield History(end, series, prometheus)
    finally:
        prometheus.stop()


def advisor(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "advisor", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def recommend(history: History, *args: str) -> subprocess.CompletedProcess[str]:
    """`recommend` over the synthetic history, evaluated at its end."""
    return advisor(
        "recommend", "--prometheus-url", history.prometheus.url, "--at", str(history.end), *args
    )


# -- what the documented strategy implies, from the raw samples ----------------------------


def quantile(q: float, values: list[float]) -> float:
    """Prometheus's φ-quantile: linear interpolation between the two nearest ranks."""
    ordered = sorted(values)
    rank = q * (len(ordered) - 1)
    lower = math.floor(rank)
    upper = min(len(ordered) - 1, lower + 1)
    weight = rank - lower
    return ordered[lower] * (1 - weight) + ordered[upper] * weight


def ceil_to(value: float, unit: float) -> float:
    return math.ceil(round(value / unit, 6)) * unit


def group_key(labels: dict[str, str]) -> tuple[str, str, str, str]:
    if labels["workload"]:
        return labels["namespace"], labels["workload"], labels["workload_kind"], labels["container"]
    return labels["namespace"], labels["pod"], "Pod", labels["container"]


def current(metrics: dict[str, list[Series]], family: str, resource: str, end: int) -> float | None:
    """The request or limit in force at `end`: the newest sample of pods alive then."""
    found = [
        s.samples[-1][1]
        for s in metrics.get(f"kubensage_container_resource_{family}", [])
        if s.labels["resource"] == resource and s.samples[-1][0] == end
    ]
    return max(found) if found else None


def counter_delta(metrics: dict[str, list[Series]], metric: str) -> float | None:
    """What a counter rose by across all pods; None when no pod has the counter."""
    if metric not in metrics:
        return None
    return sum(s.samples[-1][1] - s.samples[0][1] for s in metrics[metric])


def expected(history: History, namespaces: set[str]) -> dict[tuple[str, str, str, str], Any]:
    window_start = history.end - WINDOW
    groups: dict[tuple[str, str, str, str], dict[str, list[Series]]] = {}
    for item in history.series:
        if item.labels["namespace"] in namespaces:
            groups.setdefault(group_key(item.labels), {}).setdefault(item.metric, []).append(item)
    answers = {}
    for key, metrics in groups.items():
        busiest: dict[int, float] = {}
        pods_at: dict[int, int] = {}
        for pod_series in metrics["kubensage_container_cpu_usage_seconds_total"]:
            values = dict(pod_series.samples)
            for t, value in values.items():
                if t % STEP == 0 and t - STEP in values and t > window_start:
                    rate = (value - values[t - STEP]) / STEP
                    busiest[t] = max(busiest.get(t, 0.0), rate)
                    pods_at[t] = pods_at.get(t, 0) + 1
        rates = list(busiest.values())
        memory = [
            v for s in metrics["kubensage_container_memory_working_set_bytes"] for _, v in s.samples
        ]

        oom = counter_delta(metrics, "kubensage_container_oom_kills_total")
        periods = counter_delta(metrics, "kubensage_container_cpu_cfs_periods_total")
        throttled = counter_delta(metrics, "kubensage_container_cpu_cfs_throttled_periods_total")
        ratio = None if periods is None or throttled is None else throttled / periods
        answers[key] = {
            "cpu_percentile": quantile(0.95, rates),
            "cpu_peak": max(rates),
            "cpu_steps": len(rates),
            "memory_peak": max(memory),
            "memory_samples": len(memory),
            "oom_kills": oom,
            "throttled_ratio": ratio,
            "replicas": sum(pods_at.values()) / len(pods_at),
            "requests": {r: current(metrics, "requests", r, history.end) for r in RESOURCES},
            "limits": {r: current(metrics, "limits", r, history.end) for r in RESOURCES},
        }
    return answers


def strategy(evidence: dict[str, Any]) -> dict[str, Any]:
    """docs/advisor.md, defaults: p95 / peak when throttled >= 5%, no CPU limit, peak +15%,
    OOM bump max(x1.2, +100Mi) of max(peak, limit), minimums 10m / 64Mi, 1 day of history."""
    if evidence["cpu_steps"] < DAY // STEP:
        return {"status": "insufficient history"}
    cpu = evidence["cpu_percentile"]
    ratio = evidence["throttled_ratio"]
    if ratio is not None and ratio >= 0.05:
        cpu = max(cpu, evidence["cpu_peak"])
    cpu = ceil_to(max(cpu, 0.010), 0.001)
    memory = evidence["memory_peak"] * 1.15
    if evidence["oom_kills"]:
        base = max(evidence["memory_peak"], evidence["limits"]["memory"] or 0)
        memory = max(memory, base * 1.2, base + 100 * MIB)
    memory = ceil_to(max(memory, 64 * MIB), MIB)
    cost = None
    current_cpu, current_memory = evidence["requests"]["cpu"], evidence["requests"]["memory"]
    if current_cpu is not None and current_memory is not None:
        cost = (
            ((cpu - current_cpu) * CPU_PRICE + (memory - current_memory) / GIB * MEMORY_PRICE)
            * evidence["replicas"]
            * HOURS_PER_MONTH
        )
    return {"status": "ok", "cpu": cpu, "memory": memory, "cost": cost}


def close(actual: float | None, wanted: float | None) -> bool:
    if wanted is None or actual is None:
        return actual is wanted
    return math.isclose(actual, wanted, rel_tol=REL, abs_tol=1e-12)


# -- recommend ----------------------------------------------------------------------------


def test_recommend_gives_what_the_strategy_implies_for_each_shape(history: History) -> None:
    result = recommend(
        history,
        "--namespace",
        "shop",
        "--format",
        "json",
        "--cpu-price",
        str(CPU_PRICE),
        "--memory-price",
        str(MEMORY_PRICE),
    )
    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout)
    rows = {
        (r["namespace"], r["workload"], r["workload_kind"], r["container"]): r
        for r in document["recommendations"]
    }
    wanted = expected(history, {"shop"})
    assert set(rows) == set(wanted)
    assert ("shop", "debug-shell", "Pod", "shell") in rows  # a pod without a workload
    assert ("shop", "api", "Deployment", "sidecar") in rows  # every container of a workload
    for key, evidence in wanted.items():
        row = rows[key]
        got = row["evidence"]
        for name in ("cpu_percentile", "cpu_peak", "memory_peak", "throttled_ratio", "replicas"):
            assert close(got[name], evidence[name]), (key, name, got[name], evidence[name])
        for name in ("cpu_steps", "memory_samples"):
            assert got[name] == evidence[name], (key, name)
        assert got["oom_kills"] == evidence["oom_kills"], key
        for resource in ("cpu", "memory"):
            assert row[resource]["current_request"] == evidence["requests"][resource], key
            assert row[resource]["current_limit"] == evidence["limits"][resource], key
        answer = strategy(evidence)
        assert row["cpu"]["status"] == row["memory"]["status"] == answer["status"]
        assert close(row["cpu"]["recommended_request"], answer["cpu"]), key
        assert row["cpu"]["recommended_limit"] is None
        assert row["memory"]["recommended_request"] == row["memory"]["recommended_limit"]
        assert close(row["memory"]["recommended_request"], answer["memory"]), key
        assert close(row["monthly_cost_difference"], answer["cost"]), key

    # each shape decided by the rule meant for it
    assert rows["shop", "api", "Deployment", "app"]["evidence"]["replicas"] == pytest.approx(2)
    assert rows["shop", "worker", "Deployment", "worker"]["cpu"]["basis"].startswith("peak")
    assert rows["shop", "cache", "Deployment", "redis"]["memory"]["basis"].startswith("OOM")
    assert rows["shop", "node-agent", "DaemonSet", "agent"]["cpu"]["basis"] == "minimum"
    spiky = rows["shop", "checkout", "Deployment", "app"]
    assert spiky["cpu"]["recommended_request"] < 0.2 < spiky["evidence"]["cpu_peak"]
    # absent counters are "no data", not zero
    assert rows["shop", "db", "StatefulSet", "postgres"]["evidence"]["oom_kills"] is None
    assert rows["shop", "api", "Deployment", "app"]["evidence"]["oom_kills"] == 0


def test_other_limits_and_formats(history: History) -> None:
    patch = recommend(history, "--namespace", "shop", "--format", "yaml-patch", "--cpu-limit", "2")
    assert patch.returncode == 0, patch.stderr
    documents = [d for d in yaml.safe_load_all(patch.stdout) if d]
    wanted = {k: strategy(e) for k, e in expected(history, {"shop"}).items()}
    api = next(
        d
        for d in documents
        if "template" in d["spec"]
        and any(c["name"] == "sidecar" for c in d["spec"]["template"]["spec"]["containers"])
    )
    containers = {c["name"]: c["resources"] for c in api["spec"]["template"]["spec"]["containers"]}
    app = wanted["shop", "api", "Deployment", "app"]
    assert containers["app"]["requests"]["cpu"] == f"{round(app['cpu'] * 1000)}m"
    assert containers["app"]["limits"]["cpu"] == f"{round(app['cpu'] * 2000)}m"
    assert containers["app"]["requests"]["memory"] == f"{round(app['memory'] / MIB)}Mi"
    assert containers["app"]["limits"]["memory"] == containers["app"]["requests"]["memory"]
    assert "# kubectl -n shop patch deployment api --type strategic -p '" in patch.stdout
    assert "# Pod shop/debug-shell: its pod template cannot be patched" in patch.stdout
    # the patch, merged into a Deployment as the API server merges containers by name,
    # gives a valid Deployment
    kubernetes_validate = pytest.importorskip("kubernetes_validate")
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "api", "namespace": "shop"},
        "spec": {
            "selector": {"matchLabels": {"app": "api"}},
            "template": {
                "metadata": {"labels": {"app": "api"}},
                "spec": {
                    "containers": [
                        {"name": n, "image": "registry.local/api:1", "resources": {}}
                        for n in containers
                    ]
                },
            },
        },
    }
    for container in deployment["spec"]["template"]["spec"]["containers"]:
        container["resources"] = containers[container["name"]]
    kubernetes_validate.validate(deployment, kubernetes_validate.latest_version(), strict=True)

    csv_out = recommend(history, "--format", "csv")
    assert csv_out.returncode == 0, csv_out.stderr
    lines = csv_out.stdout.splitlines()
    assert lines[0].startswith("namespace,workload,workload_kind,container,cpu_status,")
    every = expected(history, {"shop", "young", "other"})
    assert len(lines) == 1 + len(every)
    assert any(line.startswith("other,batch,Deployment,app,ok,") for line in lines)

    table = recommend(history, "--namespace", "shop", "--namespace", "young")
    assert table.returncode == 0, table.stderr
    fresh = next(line for line in table.stdout.splitlines() if line.startswith("young"))
    assert "insufficient history: 0.25 of the 1.00 days required" in fresh
    assert "other" not in table.stdout.split("\n", 1)[1]


# -- what goes wrong gets a clear message and an exit code ---------------------------------


def assert_clean_failure(result: subprocess.CompletedProcess[str], code: int, words: str) -> None:
    assert result.returncode == code, (result.returncode, result.stdout, result.stderr)
    assert words in result.stderr, result.stderr
    assert "Traceback" not in result.stderr + result.stdout


def test_too_little_history_recommends_nothing_and_says_so(history: History) -> None:
    result = recommend(
        history,
        "--namespace",
        "young",
    )
    assert_clean_failure(result, 3, "no container has the 1 days of history --min-history")
    assert "insufficient history" in result.stdout
    nothing = recommend(
        history,
        "--namespace",
        "absent",
    )
    assert_clean_failure(nothing, 1, "no kubensage container series")


class _Unavailable(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        body = b"Service Unavailable: the TSDB is still loading"
        self.send_response(503)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet."""


def test_prometheus_answering_503_is_a_clear_error() -> None:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Unavailable)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        result = advisor("recommend", "--prometheus-url", f"http://127.0.0.1:{server.server_port}")
    finally:
        server.shutdown()
        server.server_close()
    assert_clean_failure(result, 1, "answered 503 Service Unavailable: Service Unavailable")


def test_prometheus_that_never_answers_times_out_clearly() -> None:
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)  # connections complete in the backlog; nothing ever answers
        port = silent.getsockname()[1]
        result = advisor(
            "recommend", "--prometheus-url", f"http://127.0.0.1:{port}", "--query-timeout", "2"
        )
    assert_clean_failure(result, 1, "did not answer within 2 s")


def test_prometheus_that_is_not_there_is_a_clear_error() -> None:
    result = advisor("recommend", "--prometheus-url", f"http://127.0.0.1:{free_port()}")
    assert_clean_failure(result, 1, "cannot reach Prometheus at http://127.0.0.1:")
    bad = advisor("recommend", "--prometheus-url", "ftp://example")
    assert_clean_failure(bad, 2, "is not an http(s) URL")


# -- serve: leader election, failover, staleness ----------------------------------------------


def scrape(port: int) -> dict[str, list[tuple[dict[str, str], float]]]:
    """Samples by name from one replica's /metrics ({} when it does not answer)."""
    try:
        status, body = http_get(f"http://127.0.0.1:{port}/metrics", timeout=5)
    except OSError:
        return {}
    assert status == 200
    samples: dict[str, list[tuple[dict[str, str], float]]] = {}
    for family in text_string_to_metric_families(body):
        for sample in family.samples:
            samples.setdefault(sample.name, []).append((sample.labels, sample.value))
    return samples


def value(
    samples: dict[str, list[tuple[dict[str, str], float]]], name: str, **labels: str
) -> float | None:
    for found, number in samples.get(name, []):
        if all(found.get(k) == v for k, v in labels.items()):
            return number
    return None


def recommendations(samples: dict[str, list[tuple[dict[str, str], float]]]) -> dict[str, float]:
    return {
        f"{name}{sorted(labels.items())}": number
        for name, found in samples.items()
        if name.startswith("kubensage_recommendation_")
        for labels, number in found
    }


API_CPU = {"namespace": "shop", "workload": "api", "container": "app", "resource": "cpu"}
LEASE_ARGS = ("--lease-duration", "4", "--renew-deadline", "3", "--retry-period", "0.5")


def replica(workdir: Path, name: str, prometheus_url: str, *extra: str) -> tuple[Service, int]:
    port = free_port()
    service = Service(
        name,
        python_module(
            "advisor",
            "serve",
            "--prometheus-url",
            prometheus_url,
            "--metrics-address",
            f"127.0.0.1:{port}",
            "--interval",
            "1h",
            *extra,
        ),
        workdir,
    )
    return service, port


def test_two_replicas_elect_one_leader_and_fail_over(history: History, tmp_path: Path) -> None:
    api = FakeKubeApi().start()
    kubeconfig = api.write_kubeconfig(tmp_path / "kubeconfig")
    lease_args = ("--kubeconfig", str(kubeconfig), "--lease-namespace", "kubensage", *LEASE_ARGS)
    replicas = {
        name: replica(tmp_path, name, history.prometheus.url, "--identity", name, *lease_args)
        for name in ("advisor-a", "advisor-b")
    }
    try:
        for service, port in replicas.values():
            service.start().wait_http(f"http://127.0.0.1:{port}/readyz")

        def leaders() -> list[str]:
            return [
                n
                for n, (_, p) in replicas.items()
                if value(scrape(p), "kubensage_advisor_leader") == 1
            ]

        (leader,) = eventually(lambda: leaders() if len(leaders()) == 1 else None, timeout=60)
        (follower,) = set(replicas) - {leader}
        lease = api.lease("kubensage", "kubensage-advisor")
        assert lease is not None and lease["spec"]["holderIdentity"] == leader
        leader_port, follower_port = replicas[leader][1], replicas[follower][1]
        served = eventually(
            lambda: value(scrape(leader_port), "kubensage_recommendation_request", **API_CPU),
            timeout=120,
        )
        assert 0.25 < served < 0.31  # p95 of the api's 0.25..0.30 cores
        follower_samples = scrape(follower_port)
        assert recommendations(follower_samples) == {}  # a sum over replicas counts once
        assert value(follower_samples, "kubensage_advisor_leader") == 0
        assert http_get(f"http://127.0.0.1:{follower_port}/readyz")[0] == 200
        assert leaders() == [leader]

        before = api.lease("kubensage", "kubensage-advisor")
        assert before is not None
        replicas[leader][0].process.kill()  # no release: the lease must expire
        replicas[leader][0].stop()
        eventually(lambda: leaders() == [follower], timeout=60)
        after = api.lease("kubensage", "kubensage-advisor")
        assert after is not None and after["spec"]["holderIdentity"] == follower
        assert after["spec"]["leaseTransitions"] == before["spec"]["leaseTransitions"] + 1
        # never before the old holder's lease ran out
        last_renew = datetime.fromisoformat(before["spec"]["renewTime"])
        acquired = datetime.fromisoformat(after["spec"]["acquireTime"])
        assert (acquired - last_renew).total_seconds() >= before["spec"][
            "leaseDurationSeconds"
        ] - 0.5
        taken_over = eventually(
            lambda: value(scrape(follower_port), "kubensage_recommendation_request", **API_CPU),
            timeout=120,
        )
        assert taken_over == pytest.approx(served, rel=0.05)
        # a clean stop hands the lease back at once
        assert replicas[follower][0].stop() == 0
        released = api.lease("kubensage", "kubensage-advisor")
        assert released is not None and not released["spec"].get("holderIdentity")
    finally:
        for service, _ in replicas.values():
            service.stop()
        api.stop()


class _Switch:
    """A proxy in front of the real Prometheus that can be made to answer 503."""

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream
        self.broken = threading.Event()
        switch = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                status, answer = 503, b"overloaded"
                if not switch.broken.is_set():
                    request = urllib.request.Request(
                        switch.upstream + self.path,
                        data=body,
                        method="POST",
                        headers={"Content-Type": "application/x-www-form-urlencoded"},
                    )
                    with urllib.request.urlopen(request, timeout=60) as response:
                        status, answer = response.status, response.read()
                self.send_response(status)
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, format: str, *args: Any) -> None:
                """Quiet."""

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_port}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def test_serve_keeps_the_last_recommendations_marked_stale(
    history: History, tmp_path: Path
) -> None:
    switch = _Switch(history.prometheus.url)
    service, port = replica(tmp_path, "advisor", switch.url, "--no-leader-election")
    service.argv[service.argv.index("1h")] = "2s"
    try:
        service.start().wait_http(f"http://127.0.0.1:{port}/readyz")
        first = eventually(lambda: recommendations(scrape(port)), timeout=120)
        samples = scrape(port)
        assert value(samples, "kubensage_advisor_leader") == 1
        assert value(samples, "kubensage_advisor_recommendations_stale") == 0
        succeeded = value(samples, "kubensage_advisor_last_success_timestamp_seconds")
        assert succeeded and succeeded > 0

        switch.broken.set()
        stale = eventually(
            lambda: (
                (s := scrape(port))
                and value(s, "kubensage_advisor_recommendations_stale") == 1
                and s
            ),
            timeout=60,
        )
        assert value(stale, "kubensage_advisor_query_errors_total", reason="http_error") >= 1
        assert value(stale, "kubensage_advisor_last_success_timestamp_seconds") <= (
            value(scrape(port), "kubensage_advisor_last_success_timestamp_seconds") or 0
        )
        assert set(recommendations(stale)) == set(first)  # still served

        switch.broken.clear()
        eventually(
            lambda: value(scrape(port), "kubensage_advisor_recommendations_stale") == 0, timeout=60
        )
        assert value(scrape(port), "kubensage_advisor_last_success_timestamp_seconds") > succeeded
        assert service.stop() == 0
    finally:
        service.stop()
        switch.close()
