"""The prometheus_client collector: families are built from the store at scrape time."""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client.core import Metric
from prometheus_client.registry import Collector

from relay.expose.cadvisor import cadvisor_families
from relay.expose.families import FamilySet
from relay.expose.native import native_families
from relay.state.store import NodeStore

PROFILES = ("native", "cadvisor", "both")


class ReportCollector(Collector):
    def __init__(self, store: NodeStore, profile: str = "native") -> None:
        if profile not in PROFILES:
            raise ValueError(f"unknown metric profile {profile!r}")
        self.store = store
        self.profile = profile

    def collect(self) -> Iterator[Metric]:
        views = self.store.snapshot()
        out = FamilySet()
        if self.profile in ("native", "both"):
            native_families(views, out)
        if self.profile in ("cadvisor", "both"):
            cadvisor_families(views, out)
        yield from out
