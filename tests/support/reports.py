"""Realistic reports for relay tests, built the way the agent fills them."""

from __future__ import annotations

import time

from kubensage_api.telemetry import telemetry_pb2 as tm

NANOS = 1_000_000_000


def container(
    name: str,
    cid: str,
    *,
    cpu_seconds: float = 12.5,
    state: int = tm.CONTAINER_STATE_RUNNING,
    attempt: int = 0,
    created: int = 1_700_000_000 * NANOS,
) -> tm.Container:
    out = tm.Container(
        id=cid,
        name=name,
        attempt=attempt,
        image="registry.local/app:1.2",
        image_ref="sha256:abc",
        state=state,
        created_at_unix_nanos=created,
        started_at_unix_nanos=created + NANOS,
    )
    out.cpu.usage_seconds_total = cpu_seconds
    out.cpu.usage_cores = 0.5
    out.memory.working_set_bytes = 64 * 1024 * 1024
    out.memory.usage_bytes = 80 * 1024 * 1024
    out.memory.rss_bytes = 50 * 1024 * 1024
    out.memory.page_faults = 1000
    out.memory.major_page_faults = 3
    out.writable_layer.used_bytes = 4096
    out.writable_layer.inodes_used = 7
    out.limits.memory_bytes = 256 * 1024 * 1024
    pressure = out.pressure.add(resource="cpu")
    pressure.some.total_seconds = 1.25
    pressure.full.total_seconds = 0.5
    return out


def pod(
    name: str,
    namespace: str = "default",
    containers: list[tm.Container] | None = None,
    sandbox_id: str | None = None,
    labels: dict[str, str] | None = None,
) -> tm.Pod:
    out = tm.Pod(
        sandbox_id=sandbox_id or f"sb-{namespace}-{name}",
        name=name,
        namespace=namespace,
        uid=f"uid-{name}",
        state=tm.POD_STATE_READY,
        labels=labels or {},
    )
    out.containers.extend(containers or [])
    eth0 = out.network.add(name="eth0")
    eth0.receive_bytes, eth0.transmit_bytes = 1000, 2000
    return out


def report(
    node: str = "node-a",
    sequence: int = 1,
    pods: list[tm.Pod] | None = None,
    agent_id: str = "agent-1",
    interval: float = 10.0,
) -> tm.Metrics:
    out = tm.Metrics(
        agent_id=agent_id,
        sequence=sequence,
        collected_at_unix_nanos=time.time_ns(),
        agent_version="0.1.0",
    )
    out.runtime.name, out.runtime.version = "containerd", "1.6.20"
    n = out.node
    n.name, n.kernel_release, n.os_image, n.architecture = node, "6.1.0", "Debian 12", "x86_64"
    n.cpu_count = 2
    n.cpu_seconds_by_mode.update({"user": 100.0, "system": 50.0, "idle": 1000.0})
    n.load.load1, n.load.load5, n.load.load15 = 0.5, 0.4, 0.3
    n.memory.total_bytes, n.memory.available_bytes = 8 * 1024**3, 6 * 1024**3
    n.boot_time_unix_nanos = 1_690_000_000 * NANOS
    cpu_psi = n.pressure.add(resource="cpu")
    cpu_psi.some.total_seconds = 3.0
    eth0 = n.interfaces.add(name="eth0")
    eth0.receive_bytes, eth0.transmit_bytes = 10_000, 20_000
    out.pods.extend(
        pods if pods is not None else [pod("web-1", containers=[container("app", "c1")])]
    )
    out.health.interval_seconds = interval
    out.health.cycle_duration_seconds = 0.05
    out.health.collector_errors_total["pressure"] = 2
    return out


def check(
    name: str,
    state: int = tm.CHECK_STATE_OK,
    exit_code: int | None = 0,
    output: str = "fine",
    runs: dict[str, int] | None = None,
) -> tm.CheckResult:
    """One check script's newest result, as the agent reports it."""
    out = tm.CheckResult(
        name=name,
        state=state,
        output=output,
        duration_seconds=0.25,
        ran_at_unix_nanos=1_700_000_500 * NANOS,
        interval_seconds=60,
    )
    if exit_code is not None:
        out.exit_code = exit_code
    out.runs_total.update(runs or {"ok": 3})
    return out
