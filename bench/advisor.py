"""kubensage-advisor: one `recommend` over many workloads x 14 days in a real Prometheus.

The history is synthetic (tests/support/history.py): every workload a single-pod
Deployment of one container, the shapes of the acceptance test in rotation, a sample
every 150 s. Measured: the one-shot's wall time and peak RSS, and Prometheus's CPU for
the queries. Sizes: BENCH_ADVISOR_WORKLOADS, BENCH_ADVISOR_DAYS, BENCH_ADVISOR_INTERVAL.
Then how long leadership takes to move between `serve` replicas when the leader dies.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

from bench.procstat import cpu_seconds, wait_for_peak_rss
from bench.table import Results
from kubensage_lab.processes import Service, eventually, free_port, http_get, python_module
from tests.support.fake_kube import FakeKubeApi
from tests.support.history import (
    DAY,
    MIB,
    STEP,
    Container,
    Pod,
    Workload,
    by_family,
    history_prometheus,
    write_blocks,
)
from tests.support.shapes import noise

WORKLOADS = int(os.environ.get("BENCH_ADVISOR_WORKLOADS", "1000"))
DAYS = int(os.environ.get("BENCH_ADVISOR_DAYS", "14"))
INTERVAL = int(os.environ.get("BENCH_ADVISOR_INTERVAL", "150"))
TARGET_SECONDS = 60.0
TARGET_RSS = 256 * MIB


def _container(kind: int, start: int, days: int) -> Container:
    """Steady, spiky, growing, OOM-killed, throttled or idle, by `kind` modulo 6."""
    span = days * DAY
    shapes = [
        Container("app", lambda t, i: 0.2 + 0.05 * noise(t, i), lambda t, i: 200 * MIB),
        Container(
            "app",
            lambda t, i: 1.0 if (t // STEP) % 40 == 0 else 0.1,
            lambda t, i: 300 * MIB + 50 * MIB * noise(t, i),
        ),
        Container(
            "app",
            lambda t, i: 0.1 + 0.3 * (t - start) / span,
            lambda t, i: 400 * MIB + 400 * MIB * (t - start) / span,
        ),
        Container(
            "app",
            lambda t, i: 0.05,
            lambda t, i: 100 * MIB + 150 * MIB * ((t - start) % DAY) / DAY,
            limits={"memory": 256 * MIB},
            oom_kill_times=tuple(range(start + DAY, start + span, DAY)),
        ),
        Container(
            "app",
            lambda t, i: 0.5 if (t // STEP) % 10 == 0 else 0.3,
            lambda t, i: 150 * MIB,
            limits={"cpu": 0.5},
            throttled_share=lambda t: 0.5 if (t // STEP) % 10 == 0 else 0.05,
        ),
        Container("app", lambda t, i: 0.001, lambda t, i: 10 * MIB),
    ]
    chosen = shapes[kind % len(shapes)]
    chosen.requests = {"cpu": 0.5, "memory": 512 * MIB}
    return chosen


def workloads(end: int) -> list[Workload]:
    start = end - DAYS * DAY + 600
    return [
        Workload(
            f"team-{n % 20}",
            f"service-{n}",
            "Deployment",
            [Pod(f"service-{n}-6d8f9c-{n:05d}", start, end, node=f"node-{n % 50}")],
            [_container(n, start, DAYS)],
        )
        for n in range(WORKLOADS)
    ]


def _recommend(url: str, end: int, folder: Path) -> tuple[float, int, int, str]:
    """(wall seconds, peak RSS bytes, rows, stderr) of one `recommend --format json`;
    rows is 0 when it failed."""
    argv = [
        *python_module("advisor", "recommend", "--prometheus-url", url, "--at", str(end)),
        *("--window", f"{DAYS}d", "--format", "json", "--query-timeout", "600"),
        *("--cpu-price", "0.03", "--memory-price", "0.004"),
    ]
    out_path, err_path = folder / "recommend.json", folder / "recommend.err"
    started = time.perf_counter()
    with out_path.open("w") as out, err_path.open("w") as err:
        process = subprocess.Popen(argv, stdout=out, stderr=err)
    peak = wait_for_peak_rss(process, limit_seconds=1800)
    seconds = time.perf_counter() - started
    rows = 0
    if process.returncode == 0:
        rows = len(json.loads(out_path.read_text())["recommendations"])
    return seconds, peak, rows, err_path.read_text()


def advisor_benchmarks(results: Results, workdir: Path) -> None:
    end = int(time.time()) // 3600 * 3600 - 3600
    folder = workdir / "advisor"
    folder.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    samples = write_blocks(by_family(workloads(end), INTERVAL, end), folder, windows_per_file=1)
    results.add(
        "setup",
        f"history: {WORKLOADS} workloads x {DAYS} days as TSDB blocks",
        f"{time.perf_counter() - started:.0f} s",
        f"{samples / 1e6:.1f} M samples every {INTERVAL} s, promtool",
    )
    prometheus = history_prometheus(folder)
    try:
        prometheus.start().wait_http(f"{prometheus.url}/-/ready", timeout=600)
        assert prometheus.process is not None
        before = cpu_seconds(prometheus.process.pid)
        seconds, rss, rows, errors = _recommend(prometheus.url, end, folder)
        used = cpu_seconds(prometheus.process.pid) - before
    finally:
        prometheus.stop()
    if rows == 0:
        raise RuntimeError(f"recommend failed: {errors[-2000:]}")
    results.add(
        "advisor",
        f"recommend {WORKLOADS} workloads x {DAYS} days (one-shot)",
        f"{seconds:.1f} s",
        f"{rows} rows; Prometheus used {used:.1f} CPU s",
    )
    results.add("advisor", "recommend peak RSS", f"{rss / MIB:.0f} MiB", "the advisor process")
    results.target(
        f"recommend {WORKLOADS} workloads x {DAYS} d within {TARGET_SECONDS:.0f} s",
        f"{seconds:.1f} s",
        "met" if seconds <= TARGET_SECONDS else f"missed ({seconds / TARGET_SECONDS:.2f}x)",
    )
    results.target(
        f"recommend peak RSS <= {TARGET_RSS // MIB} MiB",
        f"{rss / MIB:.0f} MiB",
        "met" if rss <= TARGET_RSS else f"missed ({rss / TARGET_RSS:.2f}x)",
    )


def _leader_port(ports: dict[str, int]) -> str | None:
    for name, port in ports.items():
        try:
            body = http_get(f"http://127.0.0.1:{port}/metrics", timeout=2)[1]
        except OSError:
            continue
        if "kubensage_advisor_leader 1.0" in body:
            return name
    return None


def failover(results: Results, workdir: Path) -> None:
    """Seconds from stopping the leader to the other replica leading, default lease timings."""
    api = FakeKubeApi().start()
    kubeconfig = api.write_kubeconfig(workdir / "advisor-kubeconfig")
    nowhere = f"http://127.0.0.1:{free_port()}"
    ports = {name: free_port() for name in ("replica-a", "replica-b", "replica-c")}
    services = {
        name: Service(
            f"advisor-{name}",
            python_module(
                "advisor",
                "serve",
                "--prometheus-url",
                nowhere,
                "--kubeconfig",
                str(kubeconfig),
                "--metrics-address",
                f"127.0.0.1:{port}",
                "--identity",
                name,
                "--lease-namespace",
                "kubensage",
            ),
            workdir,
        )
        for name, port in ports.items()
    }
    try:
        for name, service in services.items():
            service.start().wait_http(f"http://127.0.0.1:{ports[name]}/readyz")
        figures = {}
        for how, sig in (("SIGKILL", signal.SIGKILL), ("SIGTERM", signal.SIGTERM)):
            leader = eventually(lambda: _leader_port(ports), timeout=120, every=0.1)
            started = time.perf_counter()
            services[leader].stop(sig)
            del ports[leader]
            eventually(lambda: _leader_port(ports), timeout=120, every=0.1)
            figures[how] = time.perf_counter() - started
    finally:
        for service in services.values():
            service.stop()
        api.stop()
    results.add(
        "advisor",
        "leader failover after SIGKILL (lease 15 s, renew 10 s, retry 2 s)",
        f"{figures['SIGKILL']:.1f} s",
        "the lease must expire; fake API server",
    )
    results.add(
        "advisor",
        "leader handover after SIGTERM (lease released)",
        f"{figures['SIGTERM']:.1f} s",
        "the follower's next retry",
    )
    results.target(
        "failover after SIGKILL within lease duration + retry period",
        f"{figures['SIGKILL']:.1f} s",
        "met" if figures["SIGKILL"] <= 17.0 else f"missed ({figures['SIGKILL'] / 17:.2f}x)",
    )
