"""Per-report caps: over-limit content is cut and counted, the rest kept."""

from __future__ import annotations

from relay.ingest.limits import ReportLimits, enforce_limits
from tests.support.reports import container, pod, report


def test_excess_pods_containers_and_labels_are_cut_and_counted() -> None:
    pods = [
        pod(
            f"p{i}",
            containers=[container(f"c{j}", f"id{i}-{j}") for j in range(5)],
            labels={f"k{n:03d}": "v" for n in range(10)},
        )
        for i in range(7)
    ]
    r = report(pods=pods)
    cuts = enforce_limits(r, ReportLimits(max_pods=4, max_containers_per_pod=3, max_labels=6))
    assert cuts == {"pods": 1, "containers": 4, "labels": 4}
    assert [p.name for p in r.pods] == ["p0", "p1", "p2", "p3"]
    assert all(len(p.containers) == 3 for p in r.pods)
    assert sorted(r.pods[0].labels) == [f"k{n:03d}" for n in range(6)]


def test_long_values_are_cut_on_a_character_boundary() -> None:
    r = report(
        pods=[pod("é" * 600, labels={"team": "ü" * 1000}, containers=[container("app", "c1")])]
    )
    cuts = enforce_limits(r, ReportLimits(max_label_value_bytes=101))
    assert cuts["label_values"] == 3  # name, uid (derived from the name) and the label
    assert r.pods[0].name == "é" * 50  # 100 bytes: the 101st byte would split a character
    assert len(r.pods[0].uid.encode()) <= 101
    assert r.pods[0].labels["team"] == "ü" * 50


def test_annotations_are_dropped_and_reports_within_limits_untouched() -> None:
    r = report()
    r.pods[0].annotations["kubectl.kubernetes.io/last-applied-configuration"] = "x" * 100_000
    before = r.pods[0].containers[0].SerializeToString()
    assert enforce_limits(r, ReportLimits()) == {}
    assert len(r.pods[0].annotations) == 0
    assert r.pods[0].containers[0].SerializeToString() == before
