"""Agent figures against a real containerd: per-cycle cost, start-up, memory, average CPU."""

from __future__ import annotations

import os
import re
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import grpc

from bench.procstat import cpu_seconds, median, rss_bytes
from bench.table import Results
from kubensage_agent.collectors.errors import CollectorErrors
from kubensage_agent.collectors.node import NodeCollector
from kubensage_agent.hostfs import HostPaths
from kubensage_agent.report import ReportBuilder, RuntimeLink
from kubensage_api.cri import api_pb2, api_pb2_grpc
from tests.support.containerd import Containerd
from tests.support.cri_driver import CriDriver
from tests.support.processes import RelayProcess, Service, free_port, http_get, python_module

CYCLES = int(os.environ.get("BENCH_CYCLES", "30"))
RUN_SECONDS = float(os.environ.get("BENCH_AGENT_RUN_SECONDS", "300"))
CONTAINER_COUNTS = (0, 10, 110)
MIB = 1024 * 1024


def _timed(action, repeat: int) -> tuple[float, float]:  # type: ignore[no-untyped-def]
    """Median (process CPU seconds, wall seconds) of `action` over `repeat` runs."""
    cpu, wall = [], []
    for _ in range(repeat):
        c0, w0 = time.process_time(), time.perf_counter()
        action()
        cpu.append(time.process_time() - c0)
        wall.append(time.perf_counter() - w0)
    return median(cpu), median(wall)


def _agent_cycle(endpoint: str, count: int) -> tuple[float, float]:
    errors = CollectorErrors()
    builder = ReportBuilder(
        agent_id="bench",
        node=NodeCollector(HostPaths(), "bench-node", errors),
        runtime=RuntimeLink(HostPaths(), endpoint, 10.0, errors),
        errors=errors,
        cri_timeout=10.0,
    )
    sequence = iter(range(1, 10_000))
    for _ in range(3):  # warm up: discovery, first ContainerStatus of each container
        report = builder.build(next(sequence))
    assert sum(len(p.containers) for p in report.pods) == count, "unexpected container count"
    result = _timed(lambda: builder.build(next(sequence)), CYCLES)
    if builder.runtime is not None:
        builder.runtime.close()
    return result


def _bare_cri(endpoint: str) -> tuple[float, float]:
    with grpc.insecure_channel(endpoint) as channel:
        stub = api_pb2_grpc.RuntimeServiceStub(channel)

        def calls() -> None:
            stub.ListPodSandbox(api_pb2.ListPodSandboxRequest(), timeout=10)
            stub.ListContainers(api_pb2.ListContainersRequest(), timeout=10)
            stub.ListContainerStats(api_pb2.ListContainerStatsRequest(), timeout=10)

        calls()
        return _timed(calls, CYCLES)


def _node_exporter(workdir: Path) -> tuple[float, float]:
    port = free_port()
    exporter = Service(
        "node-exporter",
        ["prometheus-node-exporter", f"--web.listen-address=127.0.0.1:{port}"],
        workdir,
    )
    exporter.start().wait_http(f"http://127.0.0.1:{port}/metrics")
    try:
        assert exporter.process is not None
        pid = exporter.process.pid
        for _ in range(3):
            http_get(f"http://127.0.0.1:{port}/metrics")
        walls = []
        before = cpu_seconds(pid)
        for _ in range(CYCLES):
            started = time.perf_counter()
            http_get(f"http://127.0.0.1:{port}/metrics", timeout=30)
            walls.append(time.perf_counter() - started)
        return (cpu_seconds(pid) - before) / CYCLES, median(walls)
    finally:
        exporter.stop()


def _grow_to(driver: CriDriver, containerd: Containerd, pods: list[object], count: int) -> None:
    def one(index: int) -> object:
        pod = driver.run_pod(f"bench-{index:03d}", namespace="bench")
        driver.run_container(pod, "sleeper", "sleep 2147483647")
        return pod

    with ThreadPoolExecutor(max_workers=8) as pool:
        pods.extend(pool.map(one, range(len(pods), count)))


def _long_run(endpoint: str, workdir: Path, results: Results, binary: Path | None) -> None:
    relay = RelayProcess(
        workdir, "bench-relay", "--no-kube-enrichment", "--log-level", "warning"
    ).start()
    grpc_port, metrics = relay.grpc, relay.metrics_url
    try:
        for label, command in _agent_commands(binary):
            agent = Service(
                f"bench-agent-{label}",
                [
                    *command,
                    "run",
                    "--relay-address",
                    f"127.0.0.1:{grpc_port}",
                    "--cri-socket",
                    endpoint,
                    "--node-name",
                    f"bench-{label}",
                    "--state-dir",
                    str(workdir / f"state-{label}"),
                    "--log-level",
                    "warning",
                ],
                workdir,
            )
            started = time.perf_counter()
            os.environ["MALLOC_ARENA_MAX"] = "2"  # as the DaemonSet and the unit run it
            try:
                agent.start()
            finally:
                os.environ.pop("MALLOC_ARENA_MAX", None)
            pattern = f'kubensage_relay_node_last_sequence{{node="bench-{label}"}}'
            while pattern not in http_get(metrics)[1]:
                if time.perf_counter() - started > 120:
                    raise RuntimeError(f"agent {label} sent nothing:\n{agent.log()}")
                time.sleep(0.02)
            first_report = time.perf_counter() - started
            results.add(
                "agent",
                f"start-up to first report accepted ({label})",
                f"{first_report * 1000:.0f} ms",
                "110 containers, spawn to relay ack",
            )
            if label == "python":
                assert agent.process is not None
                pid = agent.process.pid
                cpu_before, clock_before = cpu_seconds(pid), time.perf_counter()
                time.sleep(RUN_SECONDS)
                cpu_used = cpu_seconds(pid) - cpu_before
                elapsed = time.perf_counter() - clock_before
                millicores = cpu_used / elapsed * 1000
                rss = rss_bytes(pid)
                body = http_get(metrics)[1]
                cycle = re.search(
                    rf'kubensage_agent_cycle_duration_seconds\{{node="bench-{label}"'
                    r"\} (\S+)",
                    body,
                )
                results.add(
                    "agent",
                    f"average CPU over {elapsed:.0f} s at the 10 s interval",
                    f"{millicores:.2f} mcores",
                    "110 containers",
                )
                results.add(
                    "agent",
                    "steady-state RSS",
                    f"{rss / MIB:.1f} MiB",
                    f"after {elapsed:.0f} s, 110 containers",
                )
                if cycle:
                    results.add(
                        "agent",
                        "cycle duration reported by the agent",
                        f"{float(cycle.group(1)) * 1000:.0f} ms",
                        "last cycle",
                    )
                results.target(
                    "agent RSS <= 50 MiB at 110 containers",
                    f"{rss / MIB:.1f} MiB",
                    "met" if rss <= 50 * MIB else f"missed ({rss / (50 * MIB):.2f}x)",
                )
                results.target(
                    "agent average CPU <= 5 mcores at 10 s",
                    f"{millicores:.2f}",
                    "met" if millicores <= 5 else f"missed ({millicores / 5:.2f}x)",
                )
            agent.stop()
    finally:
        relay.stop()


def _agent_commands(binary: Path | None) -> list[tuple[str, list[str]]]:
    commands = [("python", python_module("kubensage_agent"))]
    if binary is not None and binary.exists():
        commands.append(("binary", [str(binary)]))
    return commands


def agent_benchmarks(results: Results, workdir: Path, binary: Path | None) -> None:
    containerd = Containerd(workdir / "containerd")
    containerd.start()
    containerd.import_images()
    driver = CriDriver(containerd.endpoint, containerd.cgroup_root)
    pods: list[object] = []
    try:
        per_cycle: dict[int, tuple[float, float]] = {}
        for count in CONTAINER_COUNTS:
            started, before = time.perf_counter(), len(pods)
            _grow_to(driver, containerd, pods, count)
            if count > before:
                results.add(
                    "setup",
                    f"start {count - before} pods in containerd",
                    f"{time.perf_counter() - started:.1f} s",
                    "one idle container each",
                )
            cpu, wall = per_cycle[count] = _agent_cycle(containerd.endpoint, count)
            bare_cpu, bare_wall = _bare_cri(containerd.endpoint)
            results.add(
                "agent",
                f"cycle CPU / wall, {count} containers",
                f"{cpu * 1000:.1f} / {wall * 1000:.1f} ms",
                f"median of {CYCLES}",
            )
            results.add(
                "agent",
                f"bare CRI list calls CPU / wall, {count} containers",
                f"{bare_cpu * 1000:.1f} / {bare_wall * 1000:.1f} ms",
                "ListPodSandbox+ListContainers+ListContainerStats",
            )
        exporter_cpu, exporter_wall = _node_exporter(workdir)
        results.add(
            "anchor",
            "node_exporter one scrape CPU / wall (default collectors)",
            f"{exporter_cpu * 1000:.1f} / {exporter_wall * 1000:.1f} ms",
            f"mean CPU, median wall of {CYCLES}",
        )
        agent_cpu = per_cycle[110][0]
        bare = _bare_cri(containerd.endpoint)[0]
        results.target(
            "agent CPU/cycle at 110 <= node_exporter CPU/scrape",
            f"{agent_cpu * 1000:.1f} vs {exporter_cpu * 1000:.1f} ms",
            f"{'met' if agent_cpu <= exporter_cpu else 'missed'} "
            f"(ratio {agent_cpu / exporter_cpu:.2f})",
        )
        results.target(
            "agent CPU/cycle at 110 <= 1.5x bare CRI calls",
            f"{agent_cpu * 1000:.1f} vs {bare * 1000:.1f} ms",
            f"{'met' if agent_cpu <= 1.5 * bare else 'missed'} (ratio {agent_cpu / bare:.2f})",
        )
        _long_run(containerd.endpoint, workdir, results, binary)
    finally:
        driver.close()
        containerd.stop()
