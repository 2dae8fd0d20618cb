"""Relay figures: ingest throughput and latency, scrape cost next to pushgateway, memory."""

from __future__ import annotations

import asyncio
import os
import time
import urllib.request
from pathlib import Path

from bench.procstat import cpu_seconds, median, rss_bytes
from bench.table import Results
from kubensage_lab.processes import RelayProcess, Service, free_port, http_get
from tests.support import fake_kube
from tests.support.fake_kube import FakeKubeApi
from tests.support.load import percentile, run_load

MIB = 1024 * 1024
INGEST_AGENTS = int(os.environ.get("BENCH_INGEST_AGENTS", "40"))
INGEST_REPORTS = int(os.environ.get("BENCH_INGEST_REPORTS", "25"))
SCRAPE_NODES = tuple(
    int(n) for n in os.environ.get("BENCH_SCRAPE_NODES", "100,1000,5000").split(",")
)
CONTAINERS_PER_NODE = int(os.environ.get("BENCH_CONTAINERS_PER_NODE", "10"))
CACHE_PODS = int(os.environ.get("BENCH_CACHE_PODS", "10000"))
FLEET_NODES = int(os.environ.get("BENCH_FLEET_NODES", "1000"))
SCRAPES = 3


GRACE = ("--node-grace-period", "3600", "--log-level", "warning")


def _feed(address: str, nodes: int, containers: int) -> None:
    for start in range(0, nodes, 500):
        batch = min(500, nodes - start)
        # streams are cancelled, not closed, so the nodes stay for the grace period
        result = asyncio.run(
            run_load(
                address, batch, 1, containers, timeout=600, first_index=start, end_cleanly=False
            )
        )
        if result.errors:
            raise RuntimeError(f"feeding failed: {result.errors[:3]}")


def _timed_get(url: str) -> tuple[float, int]:
    started = time.perf_counter()
    with urllib.request.urlopen(url, timeout=300) as response:
        size = len(response.read())
    return time.perf_counter() - started, size


def ingest(results: Results, workdir: Path) -> None:
    with RelayProcess(workdir, "ingest-relay", *GRACE, "--no-kube-enrichment") as relay:
        before = cpu_seconds(relay.pid)
        load = asyncio.run(run_load(relay.address, INGEST_AGENTS, INGEST_REPORTS, 110))
        used = cpu_seconds(relay.pid) - before
    total = load.acked
    results.add(
        "relay",
        f"ingest: {INGEST_AGENTS} agents x {INGEST_REPORTS} reports of 110 containers",
        f"{total / load.seconds:.0f} reports/s",
        f"{total} acked, {len(load.errors)} errors, {load.seconds:.1f} s wall",
    )
    per_core = total / used if used else float("inf")
    results.add(
        "relay",
        "ingest per relay CPU-second",
        f"{per_core:.0f} reports/s/core",
        f"relay used {used:.1f} CPU s",
    )
    results.add(
        "relay",
        "ack latency p50 / p99",
        f"{percentile(load.ack_latencies, 0.5) * 1000:.0f} / "
        f"{percentile(load.ack_latencies, 0.99) * 1000:.0f} ms",
        "generator shares the cores",
    )
    results.target(
        ">= 500 reports/s per core (110-container reports)",
        f"{per_core:.0f}",
        "met" if per_core >= 500 else f"missed ({per_core / 500:.2f}x)",
    )


def scrape(results: Results, workdir: Path) -> None:
    pushgateway_port = free_port()
    for nodes in SCRAPE_NODES:
        with RelayProcess(
            workdir, f"scrape-relay-{nodes}", *GRACE, "--no-kube-enrichment"
        ) as relay:
            idle = rss_bytes(relay.pid)
            _feed(relay.address, nodes, CONTAINERS_PER_NODE)
            timings, size = [], 0
            for _ in range(SCRAPES):
                seconds, size = _timed_get(relay.metrics_url)
                timings.append(seconds)
            held = rss_bytes(relay.pid) - idle
            body = http_get(relay.metrics_url, timeout=300)[1]
        samples = sum(1 for line in body.splitlines() if line and not line.startswith("#"))
        relay_time = median(timings)
        results.add(
            "relay",
            f"scrape {nodes} nodes x {CONTAINERS_PER_NODE} containers",
            f"{relay_time * 1000:.0f} ms",
            f"{size / MIB:.1f} MiB, {samples} samples",
        )
        results.add(
            "relay",
            f"memory per node held ({nodes} nodes)",
            f"{held / nodes / 1024:.1f} KiB",
            f"RSS growth {held / MIB:.0f} MiB",
        )
        gateway = Service(
            f"pushgateway-{nodes}",
            ["prometheus-pushgateway", f"--web.listen-address=127.0.0.1:{pushgateway_port}"],
            workdir,
        )
        gateway.start().wait_http(f"http://127.0.0.1:{pushgateway_port}/-/ready")
        try:
            push = urllib.request.Request(
                f"http://127.0.0.1:{pushgateway_port}/metrics/job/kubensage",
                data=body.encode(),
                method="PUT",
                headers={"Content-Type": "text/plain; version=0.0.4"},
            )
            with urllib.request.urlopen(push, timeout=600) as response:
                assert response.status in (200, 202), response.status
            gateway_timings, gateway_size = [], 0
            for _ in range(SCRAPES):
                seconds, gateway_size = _timed_get(f"http://127.0.0.1:{pushgateway_port}/metrics")
                gateway_timings.append(seconds)
        finally:
            gateway.stop()
        gateway_time = median(gateway_timings)
        results.add(
            "anchor",
            f"pushgateway scrape, same {nodes}-node series",
            f"{gateway_time * 1000:.0f} ms",
            f"{gateway_size / MIB:.1f} MiB",
        )
        if nodes == 1000:
            results.target(
                "1,000-node scrape faster than pushgateway",
                f"{relay_time * 1000:.0f} vs {gateway_time * 1000:.0f} ms",
                f"{'met' if relay_time < gateway_time else 'missed'} "
                f"(ratio {relay_time / gateway_time:.2f})",
            )


def fleet_page(results: Results, workdir: Path) -> None:
    """The fleet page (HTML) and its JSON for FLEET_NODES nodes, served from the store."""
    with RelayProcess(workdir, "fleet-relay", *GRACE, "--no-kube-enrichment") as relay:
        _feed(relay.address, FLEET_NODES, CONTAINERS_PER_NODE)
        base = f"http://127.0.0.1:{relay.http}"
        timings: dict[str, float] = {}
        for path in ("/", "/api/v1/agents"):
            runs = [_timed_get(base + path) for _ in range(SCRAPES)]
            timings[path] = median([seconds for seconds, _ in runs])
            results.add(
                "relay",
                f"fleet {'page' if path == '/' else 'JSON'} {FLEET_NODES} nodes ({path})",
                f"{timings[path] * 1000:.0f} ms",
                f"{runs[-1][1] / 1024:.0f} KiB",
            )
    if FLEET_NODES >= 1000:
        results.target(
            "fleet page of 1,000 nodes served in under 1 s",
            f"{timings['/'] * 1000:.0f} ms",
            "met" if timings["/"] < 1.0 else "missed",
        )


def kube_cache(results: Results, workdir: Path) -> None:
    api = FakeKubeApi().start()
    try:
        deployments = max(1, CACHE_PODS // 5)
        for d in range(deployments):
            api.put(
                "/apis/apps/v1/replicasets",
                fake_kube.owned(f"app-{d}-5d9f", f"ns-{d % 50}", ("Deployment", f"app-{d}")),
            )
        for p in range(CACHE_PODS):
            d = p % deployments
            api.put(
                "/api/v1/pods",
                fake_kube.pod(
                    f"app-{d}-5d9f-{p}",
                    f"ns-{d % 50}",
                    owner=("ReplicaSet", f"app-{d}-5d9f"),
                    labels={"app": f"app-{d}", "pod-template-hash": "5d9f"},
                    requests={"cpu": "100m", "memory": "128Mi"},
                    node=f"node-{p % 100}",
                ),
            )
        for n in range(100):
            api.put("/api/v1/nodes", fake_kube.node(f"node-{n}"))
        kubeconfig = api.write_kubeconfig(workdir / "bench-kubeconfig")
        with (
            RelayProcess(workdir, "cache-off", *GRACE, "--no-kube-enrichment") as plain,
            RelayProcess(workdir, "cache-on", *GRACE, "--kubeconfig", str(kubeconfig)) as enriched,
        ):
            started = time.perf_counter()
            url = enriched.metrics_url
            while (
                http_get(url)[1].count("kubensage_relay_kube_synced{") < 4
                or 'kubensage_relay_kube_synced{resource="pods"} 1.0' not in http_get(url)[1]
            ):
                if time.perf_counter() - started > 300:
                    raise RuntimeError("enrichment never synced")
                time.sleep(0.5)
            sync = time.perf_counter() - started
            time.sleep(2)
            growth = rss_bytes(enriched.pid) - rss_bytes(plain.pid)
    finally:
        api.stop()
    results.add(
        "relay",
        f"Kubernetes cache: {CACHE_PODS} pods, {deployments} ReplicaSets, 100 nodes",
        f"{growth / MIB:.1f} MiB",
        f"{growth / CACHE_PODS:.0f} B/pod RSS over a relay without it; synced in {sync:.1f} s",
    )
