"""Check results as Prometheus series: one status series per state, durations, run counters."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

from kubensage_api.telemetry import telemetry_pb2 as tm
from relay.enrich.kube import NoEnrichment
from relay.expose.textcache import NodeTextCache
from relay.series.profiles import parse_profiles
from relay.state.store import NodeStore
from tests.support.reports import check, report


def exposition(*reports: tm.Metrics) -> str:
    store = NodeStore(grace_seconds=30)
    for item in reports:
        store.accept(item)
    return NodeTextCache(store, parse_profiles("native"), NoEnrichment()).text()


def series(text: str, family: str) -> dict[tuple[tuple[str, str], ...], float]:
    return {
        tuple(sorted(s.labels.items())): s.value
        for metric in text_string_to_metric_families(text)
        for s in metric.samples
        if s.name == family
    }


def with_checks(*results: tm.CheckResult, check_errors: int = 0) -> tm.Metrics:
    out = report()
    out.checks.extend(results)
    out.health.check_errors_total = check_errors
    return out


def test_status_has_one_series_per_state_with_1_for_the_current_one() -> None:
    text = exposition(
        with_checks(
            check("ntp"),
            check("disk", tm.CHECK_STATE_CRITICAL, 2, "disk read-only", {"critical": 4, "ok": 1}),
            check("mirror", tm.CHECK_STATE_UNKNOWN, None, "killed", {"unknown": 1}),
        )
    )
    status = series(text, "kubensage_check_status")
    assert len(status) == 12
    current = {labels: value for labels, value in status.items() if value == 1}
    assert current == {
        (("check", "ntp"), ("node", "node-a"), ("state", "ok")): 1,
        (("check", "disk"), ("node", "node-a"), ("state", "critical")): 1,
        (("check", "mirror"), ("node", "node-a"), ("state", "unknown")): 1,
    }
    runs = series(text, "kubensage_check_runs_total")
    assert runs[(("check", "disk"), ("node", "node-a"), ("result", "critical"))] == 4
    assert runs[(("check", "disk"), ("node", "node-a"), ("result", "ok"))] == 1
    assert (("check", "disk"), ("node", "node-a"), ("result", "warning")) not in runs
    assert (
        series(text, "kubensage_check_duration_seconds")[(("check", "ntp"), ("node", "node-a"))]
        == 0.25
    )
    assert (
        series(text, "kubensage_check_last_run_timestamp_seconds")[
            (("check", "ntp"), ("node", "node-a"))
        ]
        == 1_700_000_500
    )
    assert "disk read-only" not in text  # output is for people (fleet page), not a label


def test_check_errors_are_a_counter_per_node() -> None:
    text = exposition(with_checks(check_errors=7))
    assert series(text, "kubensage_agent_check_errors_total") == {(("node", "node-a"),): 7}
    assert not series(text, "kubensage_check_status")


def test_bad_and_repeated_names_never_become_series() -> None:
    text = exposition(
        with_checks(
            check("ntp"),
            check("ntp", tm.CHECK_STATE_CRITICAL, 2),
            check('evil"} 1\nkubensage_fake{x="'),
            check("x" * 5000),
            *(check(f"c{i}") for i in range(100)),
        )
    )
    names = {dict(labels)["check"] for labels in series(text, "kubensage_check_status")}
    assert "ntp" in names and len(names) == 64
    assert all(len(name) < 64 for name in names)
    assert "kubensage_fake" not in text
    ntp_current = series(text, "kubensage_check_status")[
        (("check", "ntp"), ("node", "node-a"), ("state", "ok"))
    ]
    assert ntp_current == 1  # the first result of a repeated name is the one kept
