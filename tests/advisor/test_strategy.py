"""The strategy's rules one at a time, and the units they are expressed in."""

from __future__ import annotations

import pytest

from advisor.cost import Prices, monthly_difference
from advisor.evidence import ContainerKey, Evidence, assemble
from advisor.prometheus import Sample
from advisor.queries import Queries, Selection
from advisor.strategy import (
    INSUFFICIENT_HISTORY,
    NO_DATA,
    OK,
    Strategy,
    recommend_cpu,
    recommend_memory,
)
from advisor.units import (
    MIB,
    format_cpu,
    format_memory,
    parse_cpu,
    parse_duration,
    parse_memory,
    promql_duration,
)

DAY_STEPS = 288


def evidence(**figures: object) -> Evidence:
    found = Evidence(ContainerKey("ns", "web", "Deployment", "app"), cpu_steps=14 * DAY_STEPS)
    for name, value in figures.items():
        setattr(found, name, value)
    return found


def test_cpu_comes_from_the_percentile_or_from_the_peak_when_throttled() -> None:
    base = {"cpu_percentile": 0.2, "cpu_peak": 0.5, "cfs_periods": 1000.0}
    assert recommend_cpu(evidence(**base, cfs_throttled_periods=40.0), Strategy()).request == 0.2
    throttled = recommend_cpu(evidence(**base, cfs_throttled_periods=50.0), Strategy())
    assert throttled.request == 0.5 and throttled.basis.startswith("peak")
    unknown = recommend_cpu(evidence(cpu_percentile=0.2, cpu_peak=0.5), Strategy())
    assert unknown.request == 0.2  # no CFS counters: no throttling rule, no guess


def test_cpu_limit_is_none_or_a_multiple_and_minimums_apply() -> None:
    figures = evidence(cpu_percentile=0.1234, cpu_peak=0.2)
    assert recommend_cpu(figures, Strategy()).limit is None
    advice = recommend_cpu(figures, Strategy(cpu_limit_multiple=2))
    assert (advice.request, advice.limit) == (0.124, 0.248)
    idle = recommend_cpu(evidence(cpu_percentile=0.0001, cpu_peak=0.0002), Strategy())
    assert (idle.request, idle.basis) == (0.01, "minimum")


def test_memory_is_the_peak_plus_margin_raised_after_oom_kills() -> None:
    assert recommend_memory(evidence(memory_peak=200 * MIB), Strategy()).request == 230 * MIB
    killed = evidence(memory_peak=250 * MIB, oom_kills=1.0, limits={"memory": 256 * MIB})
    assert recommend_memory(killed, Strategy()).request == 356 * MIB  # limit + 100Mi
    big = evidence(memory_peak=2000 * MIB, oom_kills=2.0, limits={"memory": 2048 * MIB})
    assert recommend_memory(big, Strategy()).request == 2458 * MIB  # limit x 1.2, rounded up
    assert recommend_memory(evidence(memory_peak=10 * MIB), Strategy()).request == 64 * MIB


def test_too_little_history_or_none_withholds_advice() -> None:
    short = evidence(cpu_percentile=0.2, cpu_peak=0.3, memory_peak=MIB, cpu_steps=100)
    advice = recommend_cpu(short, Strategy())
    assert advice.status == INSUFFICIENT_HISTORY and advice.request is None
    assert "0.35 of the 1.00 days required" in advice.basis
    assert recommend_memory(short, Strategy()).status == INSUFFICIENT_HISTORY
    assert recommend_cpu(evidence(cpu_steps=0), Strategy()).status == NO_DATA
    assert recommend_memory(evidence(), Strategy()).status == NO_DATA


def test_cost_needs_every_priced_current_request() -> None:
    figures = evidence(
        cpu_percentile=0.5, cpu_peak=1, memory_peak=1000 * MIB, replicas=3.0, requests={"cpu": 1.0}
    )
    cpu, memory = recommend_cpu(figures, Strategy()), recommend_memory(figures, Strategy())
    assert monthly_difference(figures, cpu, memory, Prices(cpu_core_hour=0.04)) == pytest.approx(
        -0.5 * 3 * 0.04 * 730
    )
    assert monthly_difference(figures, cpu, memory, Prices(0.04, 0.005)) is None
    assert monthly_difference(figures, cpu, memory, Prices()) is None
    assert cpu.status == memory.status == OK


def test_evidence_groups_workloads_across_pods_and_bare_pods_alone() -> None:
    owned = {"namespace": "a", "workload": "web", "workload_kind": "Deployment", "container": "c"}
    bare = {"namespace": "a", "pod": "debug", "container": "c"}
    found = assemble(
        {
            "cpu_steps": [Sample(owned, 10), Sample(bare, 5)],
            "requests": [
                Sample({**owned, "resource": "cpu"}, 0.5),
                Sample({**owned, "resource": "bogus"}, 9),
            ],
            "oom_kills": [Sample({**owned, "workload": "gone"}, 3)],  # no usage: no row
        }
    )
    assert set(found) == {
        ContainerKey("a", "web", "Deployment", "c"),
        ContainerKey("a", "debug", "Pod", "c"),
    }
    web = found[ContainerKey("a", "web", "Deployment", "c")]
    assert web.requests == {"cpu": 0.5} and web.oom_kills is None and web.cpu_steps == 10


def test_queries_split_owned_and_bare_pods_and_honour_the_selection() -> None:
    queries = Queries(Selection(("shop", "young"), 'cluster="eu"'), "14d", 0.95).all(False)
    assert "replicas" not in queries
    cpu = queries["cpu_percentile"]
    assert cpu.startswith("quantile_over_time(0.95, (max by (namespace, workload, workload_kind")
    assert '{workload!="",namespace=~"shop|young",cluster="eu"}' in cpu
    bare = "max by (namespace, pod, container) (rate(kubensage_container_cpu_usage_seconds_total"
    assert bare + '{workload=""' in cpu
    assert cpu.endswith("[14d:5m])")
    with pytest.raises(ValueError, match="not a Kubernetes namespace"):
        Selection(('x"}) or vector(1',))


def test_units() -> None:
    assert parse_duration("14d") == 14 * 86400 and parse_duration("1h30m") == 5400
    assert promql_duration(14 * 86400) == "14d" and promql_duration(5400) == "1h30m"
    for bad in ("", "14", "d", "1x"):
        with pytest.raises(ValueError):
            parse_duration(bad)
    assert parse_cpu("250m") == 0.25 and parse_memory("1Gi") == 1024 * MIB
    with pytest.raises(ValueError, match="not a CPU quantity"):
        parse_cpu("lots")
    assert (format_cpu(0.25), format_cpu(2.0)) == ("250m", "2")
    assert (format_memory(512 * MIB), format_memory(2048 * MIB), format_memory(1000)) == (
        "512Mi",
        "2Gi",
        "1000",
    )
