"""Synthetic kubensage history: workloads of known shape written as OpenMetrics, turned
into TSDB blocks by `promtool tsdb create-blocks-from openmetrics`, served by a real
Prometheus.

Each pod's CPU counter rises at a constant rate within every 5-minute block aligned to
multiples of 300 s, and pods start and end on those boundaries, so Prometheus's
rate(...[5m]) at an aligned step equals (C(t) - C(t-300)) / 300 exactly (extrapolation
has nothing to add). The raw samples stay available to tests, which compute what to
expect from them, not from the shapes.
"""

from __future__ import annotations

import math
import shutil
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from tests.support.processes import Prometheus, free_port

STEP = 300
DAY = 86400
MIB = 1024 * 1024
# usage in cores over the 5-minute block ending at step time t, for pod index i
CpuShape = Callable[[int, int], float]
MemoryShape = Callable[[int, int], float]  # working set bytes at sample time t, pod index i


@dataclass
class Container:
    name: str
    cpu: CpuShape
    memory: MemoryShape
    requests: dict[str, float] = field(default_factory=dict)  # "cpu" cores, "memory" bytes
    limits: dict[str, float] = field(default_factory=dict)
    oom_kill_times: tuple[int, ...] | None = None  # None: no OOM counter series at all
    throttled_share: Callable[[int], float] | None = None  # None: no CFS counters


@dataclass
class Pod:
    name: str
    start: int  # first sample, a multiple of STEP
    end: int  # last sample, a multiple of STEP
    node: str = "node-a"


@dataclass
class Workload:
    namespace: str
    name: str  # "" for a pod without a workload
    kind: str
    pods: list[Pod]
    containers: list[Container]


@dataclass
class Series:
    """One series' labels and its raw samples, as written."""

    metric: str
    labels: dict[str, str]
    samples: list[tuple[int, float]]


def labels_of(workload: Workload, pod: Pod, container: Container) -> dict[str, str]:
    return {
        "node": pod.node,
        "namespace": workload.namespace,
        "pod": pod.name,
        "container": container.name,
        "workload": workload.name,
        "workload_kind": workload.kind,
    }


def sample_times(pod: Pod, interval: int) -> range:
    return range(pod.start, pod.end + 1, interval)


def series_of(workload: Workload, interval: int, end: int, resources_from: int) -> Iterator[Series]:
    """Every series of one workload; request/limit gauges only from `resources_from` on."""
    for index, pod in enumerate(workload.pods):
        times = sample_times(pod, interval)
        for container in workload.containers:
            labels = labels_of(workload, pod, container)
            counter, cpu = 1000.0, []
            for t in times:
                if t > pod.start:
                    counter += container.cpu(math.ceil(t / STEP) * STEP, index) * interval
                cpu.append((t, round(counter, 6)))
            yield Series("kubensage_container_cpu_usage_seconds_total", labels, cpu)
            yield Series(
                "kubensage_container_memory_working_set_bytes",
                labels,
                [(t, float(round(container.memory(t, index)))) for t in times],
            )
            for family, values in (("requests", container.requests), ("limits", container.limits)):
                for resource, value in values.items():
                    unit = "core" if resource == "cpu" else "byte"
                    yield Series(
                        f"kubensage_container_resource_{family}",
                        {**labels, "resource": resource, "unit": unit},
                        [(t, value) for t in times if t >= resources_from and t <= end],
                    )
            if container.oom_kill_times is not None:
                kills = container.oom_kill_times
                yield Series(
                    "kubensage_container_oom_kills_total",
                    labels,
                    [(t, float(sum(1 for k in kills if pod.start < k <= t))) for t in times],
                )
            if container.throttled_share is not None:
                share = container.throttled_share
                periods_per_second = 10.0  # 100 ms CFS periods
                periods, throttled = [], []
                total_periods = total_throttled = 0.0
                for t in times:
                    if t > pod.start:
                        step_time = math.ceil(t / STEP) * STEP
                        total_periods += periods_per_second * interval
                        total_throttled += periods_per_second * interval * share(step_time)
                    periods.append((t, total_periods))
                    throttled.append((t, round(total_throttled, 6)))
                yield Series("kubensage_container_cpu_cfs_periods_total", labels, periods)
                yield Series(
                    "kubensage_container_cpu_cfs_throttled_periods_total", labels, throttled
                )


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


BLOCK_SECONDS = 2 * 3600  # promtool's block size; its windows are aligned to it
SMALL_HISTORY_SAMPLES = 2_000_000  # below this, a day per file (12 passes) beats start-ups
TYPES = {
    "kubensage_container_cpu_usage_seconds": "counter",
    "kubensage_container_oom_kills": "counter",
    "kubensage_container_cpu_cfs_periods": "counter",
    "kubensage_container_cpu_cfs_throttled_periods": "counter",
}


def write_openmetrics(series: list[Series], folder: Path, windows_per_file: int) -> list[Path]:
    """OpenMetrics files of `windows_per_file` 2-hour block windows each, each family once
    per file, each series in time order. promtool parses its whole input once per block
    window, so splitting keeps 14 days from costing 168 passes over everything; a few
    windows per file save promtool start-ups when the history is small."""
    families: dict[str, list[Series]] = {}
    for item in series:
        families.setdefault(item.metric.removesuffix("_total"), []).append(item)
    span = BLOCK_SECONDS * windows_per_file
    windows = sorted({t // span for item in series for t, _ in item.samples})
    files = {w: (folder / f"block-{w}.om").open("w") for w in windows}
    try:
        for family, members in families.items():
            for out in files.values():
                out.write(f"# TYPE {family} {TYPES.get(family, 'gauge')}\n")
            for item in members:
                labels = ",".join(f'{k}="{_escape(v)}"' for k, v in item.labels.items())
                prefix = f"{item.metric}{{{labels}}} "
                for t, value in item.samples:
                    files[t // span].write(f"{prefix}{value!r} {t}\n")
    finally:
        for out in files.values():
            out.write("# EOF\n")
            out.close()
    return [folder / f"block-{w}.om" for w in windows]


def build_history(
    workloads: list[Workload], workdir: Path, end: int, interval: int = 150
) -> list[Series]:
    """Write the workloads' series to TSDB blocks under workdir/tsdb; returns the series."""
    series = [s for w in workloads for s in series_of(w, interval, end, end - 3600) if s.samples]
    write_blocks(series, workdir)
    return series


def write_blocks(series: list[Series], workdir: Path) -> None:
    sources = workdir / "openmetrics"
    blocks = workdir / "tsdb"
    shutil.rmtree(sources, ignore_errors=True)
    shutil.rmtree(blocks, ignore_errors=True)
    sources.mkdir(parents=True)
    try:
        samples = sum(len(item.samples) for item in series)
        windows_per_file = 12 if samples < SMALL_HISTORY_SAMPLES else 1
        for source in write_openmetrics(series, sources, windows_per_file):
            result = subprocess.run(
                [
                    "promtool",
                    "tsdb",
                    "create-blocks-from",
                    "openmetrics",
                    "-q",
                    str(source),
                    str(blocks),
                ],
                capture_output=True,
                text=True,
                timeout=600,
                check=False,
            )
            if result.returncode != 0:
                raise RuntimeError(f"promtool failed on {source.name}: {result.stderr[-2000:]}")
    finally:
        shutil.rmtree(sources, ignore_errors=True)


def history_prometheus(workdir: Path) -> Prometheus:
    """A real Prometheus over the blocks in workdir/tsdb, scraping nothing, keeping all."""
    prometheus = Prometheus(workdir, [f"127.0.0.1:{free_port()}"], scrape_interval="1h")
    prometheus.argv += ["--storage.tsdb.retention.time=100y", "--query.lookback-delta=5m"]
    return prometheus
