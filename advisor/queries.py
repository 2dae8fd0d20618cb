"""The PromQL the advisor sends, one query per piece of evidence.

Each query answers one value per workload container. Containers of pods with a
workload are grouped across pods by (namespace, workload, workload_kind, container),
so ReplicaSet hashes and rollouts do not split history; containers of pods without a
workload (no owner, or no enrichment) are grouped per pod. The two groupings are
joined with `or`: their label sets differ, so neither hides the other.

CPU figures come from a 5-minute subquery of the busiest pod's usage rate at each
step (`max by` across the pods alive at that step), so a request set from them fits
every replica.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

P = "kubensage_container_"
CPU_USAGE = P + "cpu_usage_seconds_total"
WORKING_SET = P + "memory_working_set_bytes"
REQUESTS = P + "resource_requests"
LIMITS = P + "resource_limits"
OOM_KILLS = P + "oom_kills_total"
CFS_PERIODS = P + "cpu_cfs_periods_total"
CFS_THROTTLED_PERIODS = P + "cpu_cfs_throttled_periods_total"

STEP_SECONDS = 300  # the 5-minute usage rate: its range and the subquery's resolution
STEP = "5m"
WORKLOAD_GROUP = "namespace, workload, workload_kind, container"
POD_GROUP = "namespace, pod, container"
_NAMESPACE = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")


@dataclass(frozen=True)
class Selection:
    """Which series count: some namespaces (all when empty) and any extra label matchers
    (e.g. `cluster="prod"` when one Prometheus holds several clusters)."""

    namespaces: tuple[str, ...] = ()
    matchers: str = ""

    def __post_init__(self) -> None:
        for namespace in self.namespaces:
            if not _NAMESPACE.fullmatch(namespace) or len(namespace) > 63:
                raise ValueError(f"{namespace!r} is not a Kubernetes namespace name")

    def selector(self, *extra: str) -> str:
        matchers = list(extra)
        if self.namespaces:
            matchers.append(f'namespace=~"{"|".join(self.namespaces)}"')
        if self.matchers.strip():
            matchers.append(self.matchers.strip().strip(","))
        return "{" + ",".join(matchers) + "}"


def per_container(aggregation: str, template: str, selection: Selection, by: str = "") -> str:
    """`aggregation` of `template` per workload container, or per pod container for pods
    without a workload. `template` holds `SELECTOR` where the series' matchers go."""
    extra = f", {by}" if by else ""
    owned = template.replace("SELECTOR", selection.selector('workload!=""'))
    unowned = template.replace("SELECTOR", selection.selector('workload=""'))
    return (
        f"{aggregation} by ({WORKLOAD_GROUP}{extra}) ({owned}) or "
        f"{aggregation} by ({POD_GROUP}{extra}) ({unowned})"
    )


def _busiest_rate(selection: Selection) -> str:
    return per_container("max", f"rate({CPU_USAGE}SELECTOR[{STEP}])", selection)


def _over_steps(function: str, inner: str, window: str) -> str:
    return f"{function}(({inner})[{window}:{STEP}])"


@dataclass(frozen=True)
class Queries:
    """Every query of one recommendation run, keyed by the evidence it gives."""

    selection: Selection
    window: str  # a Prometheus duration, e.g. "14d"
    cpu_quantile: float  # 0..1

    def all(self, with_replicas: bool) -> dict[str, str]:
        busiest = _busiest_rate(self.selection)
        window = self.window
        queries = {
            "cpu_percentile": f"quantile_over_time({self.cpu_quantile:g}, "
            f"({busiest})[{window}:{STEP}])",
            "cpu_peak": _over_steps("max_over_time", busiest, window),
            "cpu_steps": _over_steps("count_over_time", busiest, window),
            "memory_peak": per_container(
                "max", f"max_over_time({WORKING_SET}SELECTOR[{window}])", self.selection
            ),
            "memory_samples": per_container(
                "sum", f"count_over_time({WORKING_SET}SELECTOR[{window}])", self.selection
            ),
            "requests": per_container("max", f"{REQUESTS}SELECTOR", self.selection, "resource"),
            "limits": per_container("max", f"{LIMITS}SELECTOR", self.selection, "resource"),
            "oom_kills": per_container(
                "sum",
                f"(max_over_time({OOM_KILLS}SELECTOR[{window}]) - "
                f"min_over_time({OOM_KILLS}SELECTOR[{window}]))",
                self.selection,
            ),
            "cfs_periods": per_container(
                "sum", f"increase({CFS_PERIODS}SELECTOR[{window}])", self.selection
            ),
            "cfs_throttled_periods": per_container(
                "sum", f"increase({CFS_THROTTLED_PERIODS}SELECTOR[{window}])", self.selection
            ),
        }
        if with_replicas:
            counted = per_container("count", f"rate({CPU_USAGE}SELECTOR[{STEP}])", self.selection)
            queries["replicas"] = _over_steps("avg_over_time", counted, window)
        return queries
