"""The series the advisor reads are the ones the relay writes, with the labels it groups by."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

from advisor.queries import CPU_USAGE, POD_GROUP, WORKING_SET, WORKLOAD_GROUP
from relay.enrich.kube import NoEnrichment
from relay.expose.textcache import NodeTextCache
from relay.series.profiles import parse_profiles
from relay.state.store import NodeStore
from tests.support.reports import report


def test_usage_series_carry_every_grouping_label() -> None:
    store = NodeStore(grace_seconds=30)
    store.accept(report())
    text = NodeTextCache(store, parse_profiles("native"), NoEnrichment()).text()
    labels_by_name = {
        sample.name: set(sample.labels)
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }
    wanted = {label.strip() for label in f"{WORKLOAD_GROUP}, {POD_GROUP}".split(",")}
    for name in (CPU_USAGE, WORKING_SET):
        assert name in labels_by_name, name
        assert wanted <= labels_by_name[name], (name, labels_by_name[name])
