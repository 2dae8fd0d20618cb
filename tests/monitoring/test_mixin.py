"""The rendered mixin: fresh, accepted by promtool, its unit tests passing with a firing
and a silent case for every alert, every name it uses declared by kubensage, every alert
with a runbook section, dashboards valid for Grafana's schema."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from grafana_foundation_sdk.cog import plugins
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models.dashboard import Dashboard

from kubensage_mixin import render
from kubensage_mixin.alerts import alert_groups
from kubensage_mixin.config import Config
from kubensage_mixin.dashboards import dashboards
from kubensage_mixin.grafana import SCHEMA_VERSION, panel_queries, variable_queries
from kubensage_mixin.model import Alert, Recording
from kubensage_mixin.rules import recording_groups
from tests.conftest import require
from tests.support.promql_names import Checker

REPO = Path(__file__).resolve().parent.parent.parent
MONITORING = REPO / "deploy" / "monitoring"
UNIT_TESTS = sorted((MONITORING / "tests").glob("*_test.yaml"))
RUNBOOK = REPO / "docs" / "runbook.md"
CONFIG = Config()


def promtool(*args: str, cwd: Path = REPO) -> subprocess.CompletedProcess[str]:
    require(shutil.which("promtool") is not None, "promtool (Debian prometheus) is missing")
    return subprocess.run(
        ["promtool", *args], cwd=cwd, capture_output=True, text=True, timeout=120, check=False
    )


def alert_names() -> set[str]:
    return {r.alert for g in alert_groups(CONFIG) for r in g.rules if isinstance(r, Alert)}


def test_rendered_files_are_fresh() -> None:
    assert render.stale(MONITORING, render.rendered(CONFIG)) == [], "run `make monitoring`"


def test_promtool_check_rules_is_clean(tmp_path: Path) -> None:
    operator = yaml.safe_load((MONITORING / "prometheus-operator/prometheusrule.yaml").read_text())
    spec = tmp_path / "prometheusrule-spec.yaml"
    spec.write_text(yaml.safe_dump(operator["spec"]))
    files = [str(MONITORING / "prometheus/alerts.yaml"), str(MONITORING / "prometheus/rules.yaml")]
    result = promtool("check", "rules", *files, str(spec))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "WARNING" not in result.stdout + result.stderr


def test_promtool_unit_tests_pass() -> None:
    result = promtool("test", "rules", *(p.name for p in UNIT_TESTS), cwd=MONITORING / "tests")
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("SUCCESS") == len(UNIT_TESTS)


def test_every_alert_has_a_firing_and_a_silent_case() -> None:
    firing: set[str] = set()
    silent: set[str] = set()
    for path in UNIT_TESTS:
        for case in yaml.safe_load(path.read_text())["tests"]:
            for check in case.get("alert_rule_test", []):
                (firing if check.get("exp_alerts") else silent).add(check["alertname"])
                for expected in check.get("exp_alerts") or []:
                    assert set(expected["exp_annotations"]) == {
                        "summary",
                        "description",
                        "runbook_url",
                    }
    assert alert_names() - firing == set(), "alerts never tested firing"
    assert alert_names() - silent == set(), "alerts never tested silent"


def test_every_alert_links_its_runbook_section() -> None:
    anchors = {
        re.sub(r"[^a-z0-9-]", "", line[3:].strip().lower().replace(" ", "-"))
        for line in RUNBOOK.read_text().splitlines()
        if line.startswith("## ")
    }
    for group in alert_groups(CONFIG):
        for rule in group.rules:
            assert isinstance(rule, Alert)
            anchor = rule.alert.lower()
            assert rule.runbook_url == f"{CONFIG.runbook_url}#{anchor}"
            assert anchor in anchors, f"docs/runbook.md has no section {rule.alert}"
            assert (
                rule.summary
                and rule.description
                and rule.severity
                in (
                    "critical",
                    "warning",
                    "info",
                )
            )


def every_expression() -> list[tuple[str, str]]:
    """(where, expression) of every rule, panel query and variable query."""
    found = [
        (getattr(rule, "record", None) or getattr(rule, "alert", ""), rule.expr)
        for group in (*recording_groups(CONFIG), *alert_groups(CONFIG))
        for rule in group.rules
    ]
    for name, board in dashboards(CONFIG).items():
        for title, exprs in panel_queries(board):
            found += [(f"{name} / {title}", expr) for expr in exprs]
    return found


def test_every_name_a_rule_or_panel_uses_is_declared() -> None:
    checker = Checker()
    problems: list[str] = []
    for group in recording_groups(CONFIG):
        for rule in group.rules:
            assert isinstance(rule, Recording)
            problems += [f"{rule.record}: {p}" for p in checker.record(rule.record, rule.expr)]
    for group in alert_groups(CONFIG):
        problems += [f"{r.alert}: {p}" for r in group.rules for p in checker.check(r.expr)]  # type: ignore[union-attr]
    for name, board in dashboards(CONFIG).items():
        for title, exprs in panel_queries(board):
            problems += [f"{name} / {title}: {p}" for e in exprs for p in checker.check(e)]
        for variable, query in variable_queries(board):
            problems += [f"{name} ${variable}: {p}" for p in checker.check_label_values(query)]
    assert problems == []
    assert len(every_expression()) > 80


@pytest.mark.parametrize(
    ("expr", "problem"),
    [
        ("rate(kubensage_container_cpu_usage_seconds{node='a'}[5m])", "unknown metric"),
        ("kubensage_container_oom_kills_total{device='sda'}", "has no label 'device'"),
        ("sum by (interface) (kubensage_container_threads)", "grouping: label 'interface'"),
        (
            "kubensage_node_load1 * on (pod) group_left(zone) kubensage_node_info",
            "vector matching: label 'pod'",
        ),
        (
            "kubensage_node_load1 * on (node) group_left(colour) kubensage_node_info",
            "group_left/right: label 'colour'",
        ),
        (
            "histogram_quantile(0.9, sum by (instance) "
            "(rate(kubensage_relay_report_age_seconds_bucket[5m])))",
            "histogram_quantile: label 'le'",
        ),
        ("label_replace(kubensage_node_load1, 'x', '$1', 'pod', '(.*)')", "label_replace source"),
    ],
)
def test_the_checker_refuses_what_kubensage_does_not_emit(expr: str, problem: str) -> None:
    assert any(problem in p for p in Checker().check(expr)), Checker().check(expr)


def test_the_checker_accepts_declared_names_and_learns_recorded_ones() -> None:
    checker = Checker()
    assert (
        checker.check(
            "sum by (cluster, namespace, workload) "
            "(rate(kubensage_container_cpu_usage_seconds_total{job='x', workload!=''}"
            "[$__rate_interval]))"
        )
        == []
    )
    assert checker.record("ns:cpu:sum", "sum by (namespace) (kubensage_container_threads)") == []
    assert checker.check("ns:cpu:sum{namespace='a'}") == []
    assert "ns:cpu:sum has no label 'pod'" in checker.check("ns:cpu:sum{pod='a'}")
    assert checker.check_label_values("label_values(kubensage_pod_info, pods)") == [
        "label 'pods' is on none of kubensage_pod_info"
    ]


def grafana_round_trip(board: dict[str, Any]) -> Any:
    """The dashboard read into Grafana's generated models and written back: what the
    schema does not know is dropped on the way."""
    plugins.register_default_plugins()
    return json.loads(json.dumps(Dashboard.from_json(board), cls=JSONEncoder))


def missing_from(original: Any, kept: Any, path: str = "") -> list[str]:
    """Paths of `original` that `kept` lost or changed."""
    if isinstance(original, dict):
        if not isinstance(kept, dict):
            return [path or "/"]
        return [
            lost
            for key, value in original.items()
            for lost in (
                missing_from(value, kept[key], f"{path}/{key}")
                if key in kept
                else [f"{path}/{key}"]
            )
        ]
    if isinstance(original, list):
        if not isinstance(kept, list) or len(kept) != len(original):
            return [path]
        return [
            lost for i, v in enumerate(original) for lost in missing_from(v, kept[i], f"{path}/{i}")
        ]
    return [] if original == kept else [path]


def rendered_dashboards() -> dict[str, dict[str, Any]]:
    return {
        path.stem: json.loads(path.read_text())
        for path in sorted((MONITORING / "grafana/dashboards").glob("*.json"))
    }


def test_dashboards_are_valid_for_grafanas_schema() -> None:
    boards = rendered_dashboards()
    assert set(boards) == {
        "kubensage-fleet",
        "kubensage-node",
        "kubensage-workload",
        "kubensage-pod",
    }
    for name, board in boards.items():
        assert missing_from(board, grafana_round_trip(board)) == [], name
        assert board["schemaVersion"] == SCHEMA_VERSION == 42


def test_the_schema_check_sees_a_misspelt_field() -> None:
    board = rendered_dashboards()["kubensage-pod"]
    board["panels"][0]["gridpos"] = board["panels"][0].pop("gridPos")
    board["templating"]["list"][1]["inclueAll"] = True
    assert set(missing_from(board, grafana_round_trip(board))) == {
        "/panels/0/gridpos",
        "/templating/list/1/inclueAll",
    }


def datasources(node: Any) -> list[Any]:
    if isinstance(node, dict):
        found = [node["datasource"]] if "datasource" in node else []
        return found + [d for v in node.values() for d in datasources(v)]
    if isinstance(node, list):
        return [d for v in node for d in datasources(v)]
    return []


def test_dashboards_have_unique_ids_and_no_hard_coded_datasource() -> None:
    uids = set()
    for name, board in rendered_dashboards().items():
        ids = [panel["id"] for panel in board["panels"]]
        assert len(ids) == len(set(ids)), name
        uids.add(board["uid"])
        variables = {v["name"]: v for v in board["templating"]["list"]}
        assert variables["datasource"]["type"] == "datasource"
        assert variables["datasource"]["query"] == "prometheus"
        assert variables["cluster"]["includeAll"] and variables["cluster"]["allValue"] == ".*"
        used = datasources(board["panels"]) + datasources(board["templating"]["list"])
        assert used and all(d == {"type": "prometheus", "uid": "${datasource}"} for d in used)
        for panel in board["panels"]:
            grid = panel["gridPos"]
            assert grid["x"] >= 0 and grid["x"] + grid["w"] <= 24, (name, panel["title"])
    assert len(uids) == 4


def test_packaged_three_ways() -> None:
    rule = yaml.safe_load((MONITORING / "prometheus-operator/prometheusrule.yaml").read_text())
    plain = [
        yaml.safe_load((MONITORING / f"prometheus/{f}.yaml").read_text())["groups"]
        for f in ("rules", "alerts")
    ]
    assert rule["kind"] == "PrometheusRule" and rule["spec"]["groups"] == plain[0] + plain[1]
    configmap = yaml.safe_load((MONITORING / "grafana/dashboards-configmap.yaml").read_text())
    assert configmap["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert {k: json.loads(v) for k, v in configmap["data"].items()} == {
        f"{k}.json": v for k, v in rendered_dashboards().items()
    }
    provider = yaml.safe_load(
        (MONITORING / "grafana/provisioning/dashboards/kubensage.yaml").read_text()
    )
    assert provider["providers"][0]["type"] == "file"
    source = yaml.safe_load(
        (MONITORING / "grafana/provisioning/datasources/kubensage.yaml").read_text()
    )
    assert source["datasources"][0]["type"] == "prometheus"


def test_another_relay_selector_renders_into_every_raw_selector(tmp_path: Path) -> None:
    assert render.main(["--out", str(tmp_path), "--relay-selector", 'job="ks"']) == 0
    alerts = (tmp_path / "prometheus/alerts.yaml").read_text()
    assert 'job="ks"' in alerts and 'job="kubensage-relay"' not in alerts
    assert render.main(["--out", str(tmp_path), "--relay-selector", 'job="ks"', "--check"]) == 0
