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
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

from kubensage_lab.processes import Prometheus, free_port

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


CPU = "kubensage_container_cpu_usage_seconds_total"
WORKING_SET = "kubensage_container_memory_working_set_bytes"
REQUESTS = "kubensage_container_resource_requests"
LIMITS = "kubensage_container_resource_limits"
OOM_KILLS = "kubensage_container_oom_kills_total"
CFS_PERIODS = "kubensage_container_cpu_cfs_periods_total"
CFS_THROTTLED = "kubensage_container_cpu_cfs_throttled_periods_total"
METRICS = (CPU, WORKING_SET, REQUESTS, LIMITS, OOM_KILLS, CFS_PERIODS, CFS_THROTTLED)
CFS_PERIODS_PER_SECOND = 10.0  # 100 ms CFS periods


def _counter(
    times: range, start: int, rate: Callable[[int], float], interval: int
) -> list[tuple[int, float]]:
    """A counter rising at `rate(step)` per second through each 5-minute block, from 0 as
    a new container's counters do (increase() bounds its extrapolation by that zero)."""
    total, samples = 0.0, []
    for t in times:
        if t > start:
            total += rate(math.ceil(t / STEP) * STEP) * interval
        samples.append((t, round(total, 6)))
    return samples


def series_of(
    workload: Workload, interval: int, end: int, resources_from: int, metric: str
) -> Iterator[Series]:
    """One metric's series of one workload; request/limit gauges only from
    `resources_from` on (only the current value is ever read)."""
    for index, pod in enumerate(workload.pods):
        times = sample_times(pod, interval)
        for container in workload.containers:
            labels = labels_of(workload, pod, container)
            if metric == CPU:
                yield Series(
                    CPU,
                    labels,
                    _counter(
                        times, pod.start, lambda t, c=container, i=index: c.cpu(t, i), interval
                    ),
                )
            elif metric == WORKING_SET:
                memory = [(t, float(round(container.memory(t, index)))) for t in times]
                yield Series(WORKING_SET, labels, memory)
            elif metric in (REQUESTS, LIMITS):
                values = container.requests if metric == REQUESTS else container.limits
                for resource, value in values.items():
                    unit = "core" if resource == "cpu" else "byte"
                    yield Series(
                        metric,
                        {**labels, "resource": resource, "unit": unit},
                        [(t, value) for t in times if resources_from <= t <= end],
                    )
            elif metric == OOM_KILLS and container.oom_kill_times is not None:
                kills = container.oom_kill_times
                counts = [(t, float(sum(1 for k in kills if pod.start < k <= t))) for t in times]
                yield Series(OOM_KILLS, labels, counts)
            elif metric in (CFS_PERIODS, CFS_THROTTLED) and container.throttled_share is not None:
                share = container.throttled_share
                yield Series(
                    metric,
                    labels,
                    _counter(
                        times,
                        pod.start,
                        (lambda t: CFS_PERIODS_PER_SECOND)
                        if metric == CFS_PERIODS
                        else (lambda t, f=share: CFS_PERIODS_PER_SECOND * f(t)),
                        interval,
                    ),
                )


def by_family(workloads: list[Workload], interval: int, end: int) -> Iterator[Series]:
    """Every series, one metric family after another, generated as they are consumed."""
    for metric in METRICS:
        for workload in workloads:
            for item in series_of(workload, interval, end, end - 3600, metric):
                if item.samples:
                    yield item


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


BLOCK_SECONDS = 2 * 3600  # promtool's block size; its windows are aligned to it
TYPES = {m.removesuffix("_total"): "counter" for m in METRICS if m.endswith("_total")}


def write_openmetrics(
    series: Iterable[Series], folder: Path, windows_per_file: int
) -> tuple[list[Path], int]:
    """OpenMetrics files of `windows_per_file` 2-hour block windows each, from series that
    arrive one family after another; each series in time order. promtool parses its whole
    input once per block window, so splitting keeps 14 days from costing 168 passes over
    everything; a few windows per file save promtool start-ups when the history is small.
    Returns the files and the samples written."""
    span = BLOCK_SECONDS * windows_per_file
    files: dict[int, TextIO] = {}
    family = ""
    written = 0
    try:
        for item in series:
            name = item.metric.removesuffix("_total")
            if name != family:
                family = name
                for out in files.values():
                    out.write(f"# TYPE {family} {TYPES.get(family, 'gauge')}\n")
            labels = ",".join(f'{k}="{_escape(v)}"' for k, v in item.labels.items())
            prefix = f"{item.metric}{{{labels}}} "
            for t, value in item.samples:
                window = t // span
                out = files.get(window)
                if out is None:
                    out = files[window] = (folder / f"block-{window}.om").open("w")
                    out.write(f"# TYPE {family} {TYPES.get(family, 'gauge')}\n")
                out.write(f"{prefix}{value!r} {t}\n")
            written += len(item.samples)
    finally:
        for out in files.values():
            out.write("# EOF\n")
            out.close()
    return [folder / f"block-{w}.om" for w in sorted(files)], written


def build_history(
    workloads: list[Workload], workdir: Path, end: int, interval: int = 150
) -> list[Series]:
    """Write the workloads' series to TSDB blocks under workdir/tsdb; returns the series."""
    series = list(by_family(workloads, interval, end))
    write_blocks(series, workdir, windows_per_file=12)
    return series


def write_blocks(series: Iterable[Series], workdir: Path, windows_per_file: int) -> int:
    """TSDB blocks under workdir/tsdb from series grouped by family; returns samples.
    A day per file (12 windows) suits small histories, one window per file large ones."""
    sources = workdir / "openmetrics"
    blocks = workdir / "tsdb"
    shutil.rmtree(sources, ignore_errors=True)
    shutil.rmtree(blocks, ignore_errors=True)
    sources.mkdir(parents=True)
    try:
        files, written = write_openmetrics(series, sources, windows_per_file)
        for source in files:
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
    return written


def history_prometheus(workdir: Path) -> Prometheus:
    """A real Prometheus over the blocks in workdir/tsdb, scraping nothing, keeping all."""
    prometheus = Prometheus(workdir, [f"127.0.0.1:{free_port()}"], scrape_interval="1h")
    prometheus.argv += ["--storage.tsdb.retention.time=100y", "--query.lookback-delta=5m"]
    return prometheus
