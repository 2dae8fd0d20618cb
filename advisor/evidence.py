"""What Prometheus says about each workload container, gathered into one record each.

A figure Prometheus has no series for stays None ("no data"), never 0: a container
without an OOM-kill counter is not a container that was never OOM-killed.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from advisor.prometheus import Sample
from advisor.queries import STEP_SECONDS

POD_KIND = "Pod"  # the kind shown for containers of pods without a workload


@dataclass(frozen=True, order=True)
class ContainerKey:
    namespace: str
    workload: str
    workload_kind: str
    container: str


def key_of(labels: dict[str, str]) -> ContainerKey:
    """The workload container a sample belongs to; pods without a workload stand alone."""
    if labels.get("workload"):
        return ContainerKey(
            labels.get("namespace", ""),
            labels["workload"],
            labels.get("workload_kind", ""),
            labels.get("container", ""),
        )
    return ContainerKey(
        labels.get("namespace", ""), labels.get("pod", ""), POD_KIND, labels.get("container", "")
    )


@dataclass
class Evidence:
    key: ContainerKey
    cpu_percentile: float | None = None  # cores, the chosen percentile of 5-minute rates
    cpu_peak: float | None = None  # cores, highest 5-minute rate
    cpu_steps: int = 0  # 5-minute steps with a usage rate
    memory_peak: float | None = None  # bytes, highest working set sample
    memory_samples: int = 0  # working set samples over all pods
    requests: dict[str, float] = field(default_factory=dict)  # resource -> cores / bytes
    limits: dict[str, float] = field(default_factory=dict)
    oom_kills: float | None = None
    cfs_periods: float | None = None
    cfs_throttled_periods: float | None = None
    replicas: float | None = None  # pods at once, averaged over the steps with usage

    @property
    def history_days(self) -> float:
        return self.cpu_steps * STEP_SECONDS / 86400

    @property
    def throttled_ratio(self) -> float | None:
        """Share of CFS periods in which the container was throttled; None without counters."""
        if self.cfs_periods is None or self.cfs_throttled_periods is None:
            return None
        if self.cfs_periods <= 0:
            return 0.0
        return min(1.0, max(0.0, self.cfs_throttled_periods / self.cfs_periods))


def _set_float(name: str) -> Callable[[Evidence, Sample], None]:
    def apply(evidence: Evidence, sample: Sample) -> None:
        setattr(evidence, name, sample.value)

    return apply


def _set_count(name: str) -> Callable[[Evidence, Sample], None]:
    def apply(evidence: Evidence, sample: Sample) -> None:
        setattr(evidence, name, round(sample.value))

    return apply


def _set_resource(name: str) -> Callable[[Evidence, Sample], None]:
    def apply(evidence: Evidence, sample: Sample) -> None:
        resource = sample.labels.get("resource", "")
        if resource in ("cpu", "memory"):
            getattr(evidence, name)[resource] = sample.value

    return apply


APPLY: dict[str, Callable[[Evidence, Sample], None]] = {
    "cpu_percentile": _set_float("cpu_percentile"),
    "cpu_peak": _set_float("cpu_peak"),
    "cpu_steps": _set_count("cpu_steps"),
    "memory_peak": _set_float("memory_peak"),
    "memory_samples": _set_count("memory_samples"),
    "requests": _set_resource("requests"),
    "limits": _set_resource("limits"),
    "oom_kills": _set_float("oom_kills"),
    "cfs_periods": _set_float("cfs_periods"),
    "cfs_throttled_periods": _set_float("cfs_throttled_periods"),
    "replicas": _set_float("replicas"),
}

# Only these make a container worth a row: a request without usage says nothing.
USAGE_EVIDENCE = ("cpu_steps", "memory_samples")


def assemble(results: dict[str, list[Sample]]) -> dict[ContainerKey, Evidence]:
    """One Evidence per workload container that has usage in any of the results."""
    found: dict[ContainerKey, Evidence] = {}
    for name in USAGE_EVIDENCE:
        for sample in results.get(name, []):
            key = key_of(sample.labels)
            found.setdefault(key, Evidence(key))
    for name, samples in results.items():
        apply = APPLY[name]
        for sample in samples:
            evidence = found.get(key_of(sample.labels))
            if evidence is not None:
                apply(evidence, sample)
    return found
