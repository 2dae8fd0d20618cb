"""What following a recommendation would change on the bill, per month.

Clusters are paid for by what pods request (the scheduler reserves it), so the
difference is (recommended - current request) x average replicas x price x 730 hours.
Prices are per core-hour and per GiB-hour, as cloud price lists give them.
"""

from __future__ import annotations

from dataclasses import dataclass

from advisor.evidence import Evidence
from advisor.strategy import OK, Advice
from advisor.units import GIB

HOURS_PER_MONTH = 730.0


@dataclass(frozen=True)
class Prices:
    cpu_core_hour: float | None = None
    memory_gib_hour: float | None = None

    @property
    def any(self) -> bool:
        return self.cpu_core_hour is not None or self.memory_gib_hour is not None


def monthly_difference(
    evidence: Evidence, cpu: Advice, memory: Advice, prices: Prices
) -> float | None:
    """None unless every priced resource has a recommendation and a known current request."""
    if not prices.any or evidence.replicas is None:
        return None
    total = 0.0
    for resource, advice, price, unit in (
        ("cpu", cpu, prices.cpu_core_hour, 1.0),
        ("memory", memory, prices.memory_gib_hour, float(GIB)),
    ):
        if price is None:
            continue
        current = evidence.requests.get(resource)
        if advice.status != OK or advice.request is None or current is None:
            return None
        total += (advice.request - current) / unit * evidence.replicas * price * HOURS_PER_MONTH
    return total
