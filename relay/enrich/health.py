"""The caches' own health on /metrics: size, sync state, relists, 410s and errors."""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from relay.enrich.kube import KubeEnrichment


class EnrichmentHealth(Collector):
    def __init__(self, enrichment: KubeEnrichment) -> None:
        self.enrichment = enrichment

    def collect(self) -> Iterator[Metric]:
        labels = ["resource"]
        objects = GaugeMetricFamily(
            "kubensage_relay_kube_objects", "Objects held in the enrichment cache.", labels=labels
        )
        synced = GaugeMetricFamily(
            "kubensage_relay_kube_synced",
            "1 once the cache has listed at least once.",
            labels=labels,
        )
        lists = CounterMetricFamily(
            "kubensage_relay_kube_lists", "Full lists (start, 410 Gone, resync).", labels=labels
        )
        gone = CounterMetricFamily(
            "kubensage_relay_kube_watch_expired", "Watches ended by 410 Gone.", labels=labels
        )
        errors = CounterMetricFamily(
            "kubensage_relay_kube_errors", "Failed list or watch calls.", labels=labels
        )
        for informer in self.enrichment.informers:
            name = [informer.resource]
            objects.add_metric(name, len(informer.items))
            synced.add_metric(name, 1 if informer.synced.is_set() else 0)
            lists.add_metric(name, informer.stats.lists)
            gone.add_metric(name, informer.stats.gone)
            errors.add_metric(name, informer.stats.errors)
        yield from (objects, synced, lists, gone, errors)
