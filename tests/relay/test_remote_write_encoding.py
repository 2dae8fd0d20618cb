"""The hand-written remote-write encoding says exactly what the text exposition says.

The fixed golden report is encoded per profile, decoded with the prompb classes
generated from proto/prometheus/remote.proto, and compared sample by sample with the
text exposition as Prometheus would store it (empty label values dropped).
"""

from __future__ import annotations

import math

import cramjam
import pytest
from prometheus_client.parser import text_string_to_metric_families

from kubensage_api.prometheus import remote_pb2
from relay.export.encode import Encoding, batches, encode_node, varint
from relay.series.profiles import PROFILES
from relay.series.rows import NodeContext
from tests.support import golden

SeriesKey = tuple[str, frozenset[tuple[str, str]]]


def from_text(profile: str) -> dict[SeriesKey, float]:
    samples = {}
    for family in text_string_to_metric_families(golden.render(profile)):
        for sample in family.samples:
            labels = frozenset((k, v) for k, v in sample.labels.items() if v)
            samples[(sample.name, labels)] = sample.value
    return samples


def decode(body: bytes) -> remote_pb2.WriteRequest:
    request = remote_pb2.WriteRequest()
    request.ParseFromString(body)
    return request


def encoded(profile: str, external: dict[str, str] | None = None) -> remote_pb2.WriteRequest:
    context = NodeContext(golden.view(), golden.GoldenEnrichment())
    series = encode_node([PROFILES[profile]], context, Encoding(external or {})).series
    return decode(b"".join(series))


def as_samples(request: remote_pb2.WriteRequest) -> dict[SeriesKey, float]:
    out: dict[SeriesKey, float] = {}
    for series in request.timeseries:
        labels = {label.name: label.value for label in series.labels}
        name = labels.pop("__name__")
        key = (name, frozenset(labels.items()))
        assert key not in out, f"series written twice: {key}"
        (sample,) = series.samples
        out[key] = sample.value
    return out


@pytest.mark.parametrize("profile", sorted(PROFILES))
def test_every_sample_of_the_exposition_and_nothing_else(profile: str) -> None:
    text = from_text(profile)
    written = as_samples(encoded(profile))
    assert written.keys() == text.keys()
    for key, value in text.items():
        assert written[key] == value or (math.isnan(value) and math.isnan(written[key])), key
    print(f"{profile}: {len(written)} series equal to the text exposition")


@pytest.mark.parametrize("profile", sorted(PROFILES))
def test_labels_sorted_unique_named_and_stamped_with_the_collection_time(profile: str) -> None:
    request = encoded(profile)
    assert request.timeseries
    for series in request.timeseries:
        names = [label.name for label in series.labels]
        assert names == sorted(names) and len(set(names)) == len(names)
        assert "__name__" in names
        assert all(label.value for label in series.labels)
        assert [s.timestamp for s in series.samples] == [golden.T0 // 1_000_000]


def test_external_labels_are_added_but_never_override_a_series_label() -> None:
    request = encoded("native", {"cluster": "prod", "replica": "r1"})
    info = None
    for series in request.timeseries:
        labels = {label.name: label.value for label in series.labels}
        assert labels["replica"] == "r1"
        if labels["__name__"] == "kubensage_node_info":
            info = labels
        else:
            assert labels["cluster"] == "prod", labels
    assert info is not None and info["cluster"] == "golden-cluster"


@pytest.mark.parametrize(
    ("label", "family"),
    [("workload", "kubensage_pod_info"), ("qos_class", "kubensage_pod_info")],
    ids=["row label", "family label"],
)
def test_an_external_label_fills_a_label_the_series_has_empty(label: str, family: str) -> None:
    """Prometheus keeps no empty label, so such a series has no label of that name: the
    external label's value goes there, as it would in a scraping Prometheus."""
    request = encoded("native", {label: "fallback"})
    written = sorted(
        labels[label]
        for labels in ({lb.name: lb.value for lb in s.labels} for s in request.timeseries)
        if labels["__name__"] == family
    )
    exposed = [dict(key[1]).get(label, "") for key in from_text("native") if key[0] == family]
    assert "" in exposed and set(exposed) != {""}  # the golden report has both kinds
    assert written == sorted(value or "fallback" for value in exposed)


def test_external_label_sorting_before_the_name_label() -> None:
    request = encoded("cadvisor", {"Zone": "upper", "a": "lower"})
    for series in request.timeseries:
        names = [label.name for label in series.labels]
        assert names[0] == "Zone" and names[1] == "__name__" and names[2] == "a"


def test_batches_are_valid_write_requests_with_their_sample_counts() -> None:
    context = NodeContext(golden.view(), golden.GoldenEnrichment())
    series = encode_node([PROFILES["native"]], context, Encoding({})).series
    parts = batches(series, 100)
    assert [count for _, count in parts][:-1] == [100] * (len(parts) - 1)
    assert sum(count for _, count in parts) == len(series)
    together = []
    for body, count in parts:
        compressed = bytes(cramjam.snappy.compress_raw(body))
        request = decode(bytes(cramjam.snappy.decompress_raw(compressed)))
        assert len(request.timeseries) == count
        together.extend(request.timeseries)
    assert together == list(decode(b"".join(series)).timeseries)


@pytest.mark.parametrize("value", [1, 127, 128, 300, 16384, 2**35, 2**63 - 1, -1, -(2**40)])
def test_varint_matches_protobuf(value: int) -> None:
    sample = remote_pb2.Sample(timestamp=value)  # proto3 leaves a 0 out, hence no 0 here
    assert b"\x10" + varint(value) == sample.SerializeToString()
