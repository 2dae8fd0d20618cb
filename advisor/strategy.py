"""The recommendation strategy, as pure arithmetic on one container's evidence.

CPU request: the chosen percentile (default p95) of the busiest pod's 5-minute usage
rate; when the container was throttled in at least `throttling_threshold` of its CFS
periods its usage was capped by the limit, so the peak rate is used instead.
CPU limit: none, or the request times `cpu_limit_multiple`.
Memory request = limit: the peak working set plus `memory_margin`; after an OOM kill
at least max(base x oom_bump_ratio, base + oom_min_bump) where base is the larger of
the peak and the current limit (the kill happened at the limit, the peak stopped there).
Both are raised to the minimums, rounded up to 1m / 1Mi, and withheld when the
container has less than `min_history_seconds` of 5-minute usage steps.
docs/advisor.md explains each choice and compares it with KRR and the VPA.
"""

from __future__ import annotations

from dataclasses import dataclass

from advisor.evidence import Evidence
from advisor.queries import STEP_SECONDS
from advisor.units import MIB, round_up_cpu, round_up_memory

OK = "ok"
INSUFFICIENT_HISTORY = "insufficient history"
NO_DATA = "no data"


@dataclass(frozen=True)
class Strategy:
    cpu_percentile: float = 95.0
    cpu_limit_multiple: float | None = None  # None: recommend no CPU limit
    memory_margin: float = 0.15
    oom_bump_ratio: float = 1.2
    oom_min_bump_bytes: float = 100 * MIB
    min_cpu_cores: float = 0.010
    min_memory_bytes: float = 64 * MIB
    min_history_seconds: float = 86400.0
    throttling_threshold: float = 0.05

    def __post_init__(self) -> None:
        if not 0 < self.cpu_percentile <= 100:
            raise ValueError("the CPU percentile must be in (0, 100]")
        if self.cpu_limit_multiple is not None and self.cpu_limit_multiple < 1:
            raise ValueError("a CPU limit multiple below 1 would cap usage under the request")
        if self.memory_margin < 0 or self.oom_bump_ratio < 1 or self.oom_min_bump_bytes < 0:
            raise ValueError("memory margin and OOM bumps cannot lower a recommendation")
        if not 0 <= self.throttling_threshold <= 1:
            raise ValueError("the throttling threshold is a share of CFS periods, 0..1")

    @property
    def min_steps(self) -> int:
        return int(-(-self.min_history_seconds // STEP_SECONDS))


@dataclass(frozen=True)
class Advice:
    """One resource's recommendation; `request`/`limit` are None unless status is ok, and
    an ok `limit` of None means "no limit"."""

    status: str
    request: float | None = None
    limit: float | None = None
    basis: str = ""  # which evidence decided the value, for people reading the output


def _history_status(evidence: Evidence, strategy: Strategy) -> Advice | None:
    if evidence.cpu_steps == 0:
        return Advice(NO_DATA, basis="no 5-minute usage rates in the window")
    if evidence.cpu_steps < strategy.min_steps:
        return Advice(
            INSUFFICIENT_HISTORY,
            basis=f"{evidence.history_days:.2f} of the "
            f"{strategy.min_history_seconds / 86400:.2f} days required",
        )
    return None


def recommend_cpu(evidence: Evidence, strategy: Strategy) -> Advice:
    withheld = _history_status(evidence, strategy)
    if withheld is not None:
        return withheld
    if evidence.cpu_percentile is None or evidence.cpu_peak is None:
        return Advice(NO_DATA, basis="no CPU usage percentile")
    throttled = evidence.throttled_ratio
    if throttled is not None and throttled >= strategy.throttling_threshold:
        value = max(evidence.cpu_peak, evidence.cpu_percentile)
        basis = f"peak (throttled {throttled:.1%})"
    else:
        value = evidence.cpu_percentile
        basis = f"p{strategy.cpu_percentile:g}"
    if value < strategy.min_cpu_cores:
        value, basis = strategy.min_cpu_cores, "minimum"
    request = round_up_cpu(value)
    limit = (
        None
        if strategy.cpu_limit_multiple is None
        else round_up_cpu(request * strategy.cpu_limit_multiple)
    )
    return Advice(OK, request, limit, basis)


def recommend_memory(evidence: Evidence, strategy: Strategy) -> Advice:
    withheld = _history_status(evidence, strategy)
    if withheld is not None:
        return withheld
    if evidence.memory_peak is None:
        return Advice(NO_DATA, basis="no working set samples")
    value = evidence.memory_peak * (1 + strategy.memory_margin)
    basis = f"peak + {strategy.memory_margin:.0%}"
    if evidence.oom_kills:
        base = max(evidence.memory_peak, evidence.limits.get("memory", 0.0))
        bumped = max(base * strategy.oom_bump_ratio, base + strategy.oom_min_bump_bytes)
        if bumped > value:
            value, basis = bumped, f"OOM-killed {evidence.oom_kills:.0f}x: bumped"
    if value < strategy.min_memory_bytes:
        value, basis = strategy.min_memory_bytes, "minimum"
    size = round_up_memory(value)
    return Advice(OK, size, size, basis)
