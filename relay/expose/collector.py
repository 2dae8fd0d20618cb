"""The prometheus_client collector: families are built from the store at scrape time.

Each node is built on its own: a report that trips the exposition costs only that
node's series, is logged once, and is counted; it never fails the scrape.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

from loguru import logger
from prometheus_client.core import Metric
from prometheus_client.registry import Collector

from kubensage_common.logsetup import OnceLogger
from relay.enrich.kube import Enrichment, NoEnrichment
from relay.expose.cadvisor import cadvisor_families
from relay.expose.families import FamilySet
from relay.expose.native import native_families
from relay.state.store import NodeStore, NodeView

PROFILES = ("native", "cadvisor", "both")


class ReportCollector(Collector):
    def __init__(
        self,
        store: NodeStore,
        profile: str = "native",
        on_error: Callable[[], None] | None = None,
        enrichment: Enrichment | None = None,
    ) -> None:
        if profile not in PROFILES:
            raise ValueError(f"unknown metric profile {profile!r}")
        self.store = store
        self.profile = profile
        self.on_error = on_error
        self.enrichment = enrichment if enrichment is not None else NoEnrichment()
        self._once = OnceLogger()

    def collect(self) -> Iterator[Metric]:
        out = FamilySet()
        for view in self.store.snapshot():
            try:
                self._add_node(view, out)
            except Exception as exc:  # one node must not fail every node's scrape
                if self.on_error is not None:
                    self.on_error()
                self._once.problem(
                    f"expose:{view.node}", f"cannot expose node {view.node}: {exc!r}"
                )
                logger.opt(exception=exc).debug("exposition failure")
            else:
                self._once.clear(f"expose:{view.node}")
        yield from out

    def _add_node(self, view: NodeView, out: FamilySet) -> None:
        if self.profile in ("native", "both"):
            native_families([view], out, self.enrichment)
        if self.profile in ("cadvisor", "both"):
            cadvisor_families([view], out)
