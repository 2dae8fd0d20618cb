"""The one-shot's output formats, on a report built by hand."""

from __future__ import annotations

import csv
import io
import json

import yaml

from advisor.cost import Prices
from advisor.evidence import ContainerKey, Evidence
from advisor.formats import render
from advisor.report import Report, Row
from advisor.strategy import INSUFFICIENT_HISTORY, OK, Advice, Strategy
from advisor.units import MIB


def row(kind: str, name: str, cpu: Advice, memory: Advice, **figures: object) -> Row:
    evidence = Evidence(ContainerKey("ns", name, kind, "main"), cpu_steps=4032)
    for field, value in figures.items():
        setattr(evidence, field, value)
    return Row(evidence, cpu, memory, None)


def report(*rows: Row, prices: Prices | None = None) -> Report:
    return Report(1_700_000_000.0, 14 * 86400, Strategy(), prices or Prices(), list(rows))


SIZED = (Advice(OK, 0.25, None, "p95"), Advice(OK, 300 * MIB, 300 * MIB, "peak + 15%"))


def test_patches_follow_each_kind_to_its_pod_template() -> None:
    text = render(
        report(
            row("CronJob", "nightly", *SIZED),
            row("Job", "once", *SIZED),
            row("StatefulSet", "db", Advice(OK, 1.5, 3.0, "p95"), Advice(INSUFFICIENT_HISTORY)),
        ),
        "yaml-patch",
    )
    documents = [d for d in yaml.safe_load_all(text) if d]
    cronjob = next(d for d in documents if "jobTemplate" in d["spec"])
    (container,) = cronjob["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"]
    assert container == {
        "name": "main",
        "resources": {
            "requests": {"cpu": "250m", "memory": "300Mi"},
            "limits": {"cpu": None, "memory": "300Mi"},
        },
    }
    assert "# kubectl -n ns patch cronjob nightly --type strategic -p '" in text
    assert "# Job ns/once: its pod template cannot be patched" in text
    statefulset = next(d for d in documents if "template" in d["spec"])
    (db,) = statefulset["spec"]["template"]["spec"]["containers"]
    assert db["resources"] == {"requests": {"cpu": "1500m"}, "limits": {"cpu": "3"}}


def test_unknown_is_empty_in_csv_and_null_in_json_never_zero() -> None:
    built = report(row("Deployment", "web", *SIZED, requests={"cpu": 0.5}))
    (line,) = csv.DictReader(io.StringIO(render(built, "csv")))
    assert line["cpu_current_request"] == "0.5" and line["memory_current_request"] == ""
    assert line["oom_kills"] == "" and line["throttled_ratio"] == ""
    (item,) = json.loads(render(built, "json"))["recommendations"]
    assert item["memory"]["current_request"] is None and item["evidence"]["oom_kills"] is None
    assert item["cpu"]["recommended_limit"] is None and item["cpu"]["status"] == "ok"


def test_table_shows_changes_unknowns_and_withheld_rows() -> None:
    text = render(
        report(
            row("Deployment", "web", *SIZED, requests={"cpu": 1.0}, oom_kills=0.0),
            row(
                "Deployment",
                "new",
                Advice(INSUFFICIENT_HISTORY, basis="0.25 of the 1.00 days"),
                Advice(INSUFFICIENT_HISTORY),
            ),
            prices=Prices(cpu_core_hour=0.03),
        ),
        "table",
    )
    web = next(line for line in text.splitlines() if " web " in line)
    assert "1 -> 250m" in web and "- -> none" in web and "- -> 300Mi" in web
    assert "oom 0" in web and "throttled n/a" in web and web.rstrip().endswith("n/a")
    new = next(line for line in text.splitlines() if " new " in line)
    assert "(keep)" in new and "insufficient history: 0.25 of the 1.00 days" in new
    assert "2 containers, window 14d" in text
