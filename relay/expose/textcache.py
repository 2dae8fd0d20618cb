"""Node series rendered to text once per change, so a scrape only concatenates.

A node's families are built by the same code as always (native/cAdvisor profiles on
prometheus_client metric families) and encoded by prometheus_client's own text
encoder; the result is kept per node until something it depends on changes: the
report (agent, sequence), the stream state, or the Kubernetes metadata of its pods
and node. A scrape then writes each family's HELP/TYPE once followed by every
node's cached samples of it.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Hashable, Iterator
from dataclasses import dataclass

from prometheus_client import generate_latest
from prometheus_client.core import Metric

from kubensage_common.logsetup import OnceLogger
from relay.enrich.kube import Enrichment
from relay.expose.cadvisor import cadvisor_families
from relay.expose.families import FamilySet
from relay.expose.native import native_families
from relay.state.store import NodeStore, NodeView

PROFILES = ("native", "cadvisor", "both")


@dataclass(frozen=True)
class _Rendered:
    key: Hashable
    families: dict[str, tuple[str, str]]  # family -> (HELP+TYPE lines, sample lines)


class _OneNode:
    """Shapes one node's families like a registry, for prometheus_client's encoder."""

    def __init__(self, families: FamilySet) -> None:
        self._families = families

    def collect(self) -> Iterator[Metric]:
        return iter(self._families)


def split_families(text: str) -> dict[str, tuple[str, str]]:
    """Cut encoder output into (header, samples) per family, keyed by family name."""
    families: dict[str, tuple[str, str]] = {}
    name, header, samples = "", [], []  # type: ignore[var-annotated]
    # only "\n" ends a line: label values may hold \x1e, \x85, \u2028... which
    # str.splitlines() would also split on, but the format leaves unescaped
    for line in (part + "\n" for part in text.split("\n")[:-1]):
        if line.startswith("# HELP "):
            if name:
                families[name] = ("".join(header), "".join(samples))
            name, header, samples = line.split(" ", 3)[2], [line], []
        elif line.startswith("#"):
            header.append(line)
        else:
            samples.append(line)
    if name:
        families[name] = ("".join(header), "".join(samples))
    return families


class NodeTextCache:
    def __init__(
        self,
        store: NodeStore,
        profile: str,
        enrichment: Enrichment,
        on_error: Callable[[], None] | None = None,
    ) -> None:
        if profile not in PROFILES:
            raise ValueError(f"unknown metric profile {profile!r}")
        self.store = store
        self.profile = profile
        self.enrichment = enrichment
        self.on_error = on_error
        self._cache: dict[str, _Rendered] = {}
        self._lock = threading.Lock()
        self._once = OnceLogger()
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

    def _render(self, view: NodeView) -> dict[str, tuple[str, str]]:
        out = FamilySet()
        if self.profile in ("native", "both"):
            native_families([view], out, self.enrichment)
        if self.profile in ("cadvisor", "both"):
            cadvisor_families([view], out)
        self.renders += 1
        return split_families(generate_latest(_OneNode(out)).decode())

    def text(self) -> str:
        """Every live node's series, one HELP/TYPE per family."""
        views = self.store.snapshot()
        merged: dict[str, tuple[str, list[str]]] = {}
        with self._lock:  # concurrent scrapes share renders instead of repeating them
            live = set()
            for view in views:
                live.add(view.node)
                families = self._node(view)
                for name, (header, samples) in families.items():
                    entry = merged.get(name)
                    if entry is None:
                        merged[name] = (header, [samples])
                    else:
                        entry[1].append(samples)
            for gone in set(self._cache) - live:
                del self._cache[gone]
        return "".join(header + "".join(chunks) for header, chunks in merged.values())

    def _node(self, view: NodeView) -> dict[str, tuple[str, str]]:
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
