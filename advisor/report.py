"""One recommendation run: query Prometheus, assemble evidence, apply the strategy."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from advisor.cost import Prices, monthly_difference
from advisor.evidence import Evidence, assemble
from advisor.prometheus import PrometheusClient, Sample
from advisor.queries import Queries, Selection
from advisor.strategy import Advice, Strategy, recommend_cpu, recommend_memory
from advisor.units import promql_duration


@dataclass(frozen=True)
class Row:
    evidence: Evidence
    cpu: Advice
    memory: Advice
    monthly_cost_difference: float | None


@dataclass(frozen=True)
class Report:
    at: float  # evaluation time, Unix seconds
    window_seconds: int
    strategy: Strategy
    prices: Prices
    rows: list[Row]


@dataclass(frozen=True)
class Request:
    """Everything one run needs besides the Prometheus client."""

    selection: Selection
    strategy: Strategy
    window_seconds: int
    prices: Prices


def build_report(
    client: PrometheusClient,
    request: Request,
    at: float,
    on_query: Callable[[str], None] | None = None,
) -> Report:
    """Raises PrometheusError on the first failed query: a run is whole or not at all."""
    queries = Queries(
        request.selection,
        promql_duration(request.window_seconds),
        request.strategy.cpu_percentile / 100,
    )
    results: dict[str, list[Sample]] = {}
    for name, promql in queries.all(with_replicas=request.prices.any).items():
        if on_query is not None:
            on_query(name)
        results[name] = client.query(promql, at)
    rows = []
    for _key, evidence in sorted(assemble(results).items()):
        cpu = recommend_cpu(evidence, request.strategy)
        memory = recommend_memory(evidence, request.strategy)
        cost = monthly_difference(evidence, cpu, memory, request.prices)
        rows.append(Row(evidence, cpu, memory, cost))
    return Report(at, request.window_seconds, request.strategy, request.prices, rows)
