"""Node series rendered to text once per change, so a scrape only concatenates.

A node's series are walked from the profiles' declarations and written as text;
the result is kept per node until something it depends on changes: the report
(agent, sequence), the stream state, or the Kubernetes metadata of its pods and
node. A scrape then writes each family's HELP/TYPE once followed by every node's
cached samples of it.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass

from kubensage_common.logsetup import OnceLogger
from relay.enrich.kube import Enrichment
from relay.expose.text import NodeText, merge, render_node
from relay.series.rows import NodeContext
from relay.series.spec import Profile
from relay.state.store import NodeStore, NodeView


@dataclass(frozen=True)
class _Rendered:
    key: Hashable
    families: NodeText


class NodeTextCache:
    def __init__(
        self,
        store: NodeStore,
        profiles: Sequence[Profile],
        enrichment: Enrichment,
        on_error: Callable[[], None] | None = None,
    ) -> None:
        self.store = store
        self.profiles = tuple(profiles)
        self.enrichment = enrichment
        self.on_error = on_error
        self._cache: dict[str, _Rendered] = {}
        self._lock = threading.Lock()
        self._once = OnceLogger(logging.getLogger(__name__))
        self.renders = 0

    def _key(self, view: NodeView) -> Hashable:
        enrichment = self.enrichment
        pods = []
        for pod in view.report.pods:
            info = enrichment.pod(pod.uid)
            pods.append((info, enrichment.workload(info) if info is not None else None))
        return (
            view.agent_id,
            view.report.sequence,
            view.connected,
            enrichment.node(view.node),
            enrichment.cluster_name,
            tuple(pods),
        )

    def _render(self, view: NodeView) -> NodeText:
        self.renders += 1
        return render_node(self.profiles, NodeContext(view, self.enrichment))

    def text(self) -> str:
        """Every live node's series, one HELP/TYPE per family."""
        views = self.store.snapshot()
        with self._lock:  # concurrent scrapes share renders instead of repeating them
            nodes = [self._node(view) for view in views]
            for gone in set(self._cache) - {view.node for view in views}:
                del self._cache[gone]
        return merge(nodes)

    def _node(self, view: NodeView) -> NodeText:
        key = self._key(view)
        held = self._cache.get(view.node)
        if held is not None and held.key == key:
            return held.families
        try:
            families = self._render(view)
        except Exception as exc:  # one node must not fail every node's scrape
            if self.on_error is not None:
                self.on_error()
            self._once.problem(f"expose:{view.node}", f"cannot expose node {view.node}: {exc!r}")
            self._cache.pop(view.node, None)
            return {}
        self._once.clear(f"expose:{view.node}")
        self._cache[view.node] = _Rendered(key, families)
        return families
