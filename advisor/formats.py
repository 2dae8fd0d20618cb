"""The one-shot's outputs: a table for people, JSON and CSV for tools, and strategic
merge patches for `kubectl patch`. Figures are in base units (cores, bytes) everywhere
but the table and the patches, which use Kubernetes quantities."""

from __future__ import annotations

import csv
import io
import itertools
import json
from dataclasses import asdict
from datetime import UTC, datetime
from typing import Any

import yaml

from advisor.report import Report, Row
from advisor.strategy import OK, Advice
from advisor.units import GIB, MIB, format_cpu, format_memory, promql_duration

FORMATS = ("table", "json", "csv", "yaml-patch")
RESOURCES = ("cpu", "memory")
# Where each workload kind keeps its pod template; Jobs and bare Pods cannot be patched.
POD_TEMPLATE = {
    "Deployment": ("spec", "template"),
    "StatefulSet": ("spec", "template"),
    "DaemonSet": ("spec", "template"),
    "ReplicaSet": ("spec", "template"),
    "CronJob": ("spec", "jobTemplate", "spec", "template"),
}


def render(report: Report, output_format: str) -> str:
    return {"table": table, "json": to_json, "csv": to_csv, "yaml-patch": yaml_patches}[
        output_format
    ](report)


def _advice(row: Row, resource: str) -> Advice:
    return row.cpu if resource == "cpu" else row.memory


def _evidence(row: Row) -> dict[str, Any]:
    e = row.evidence
    return {
        "cpu_percentile": e.cpu_percentile,
        "cpu_peak": e.cpu_peak,
        "cpu_steps": e.cpu_steps,
        "history_days": round(e.history_days, 3),
        "memory_peak": e.memory_peak,
        "memory_samples": e.memory_samples,
        "oom_kills": e.oom_kills,
        "throttled_ratio": e.throttled_ratio,
        "replicas": e.replicas,
    }


def _resource(row: Row, resource: str) -> dict[str, Any]:
    advice = _advice(row, resource)
    return {
        "status": advice.status,
        "basis": advice.basis,
        "current_request": row.evidence.requests.get(resource),
        "current_limit": row.evidence.limits.get(resource),
        "recommended_request": advice.request,
        "recommended_limit": advice.limit,
    }


def to_json(report: Report) -> str:
    document = {
        "at": datetime.fromtimestamp(report.at, UTC).isoformat(),
        "window": promql_duration(report.window_seconds),
        "strategy": asdict(report.strategy),
        "prices": asdict(report.prices),
        "recommendations": [
            {
                **asdict(row.evidence.key),
                **{resource: _resource(row, resource) for resource in RESOURCES},
                "evidence": _evidence(row),
                "monthly_cost_difference": row.monthly_cost_difference,
            }
            for row in report.rows
        ],
    }
    return json.dumps(document, indent=2) + "\n"


def to_csv(report: Report) -> str:
    out = io.StringIO()
    writer: Any = None
    for row in report.rows:
        flat: dict[str, Any] = dict(asdict(row.evidence.key))
        for resource in RESOURCES:
            flat.update({f"{resource}_{k}": v for k, v in _resource(row, resource).items()})
        flat.update(_evidence(row))
        flat["monthly_cost_difference"] = row.monthly_cost_difference
        if writer is None:
            writer = csv.DictWriter(out, fieldnames=list(flat), lineterminator="\n")
            writer.writeheader()
        writer.writerow({k: "" if v is None else v for k, v in flat.items()})
    return out.getvalue()


def _human(resource: str, value: float | None) -> str:
    if value is None:
        return "-"
    if resource == "cpu":
        return format_cpu(value) if value >= 0.001 else f"{value:.4f}"
    if value >= GIB:
        return f"{value / GIB:.1f}Gi"
    return f"{value / MIB:.0f}Mi"


def _cell(row: Row, resource: str, which: str) -> str:
    advice = _advice(row, resource)
    current_values = row.evidence.requests if which == "request" else row.evidence.limits
    current = current_values.get(resource)
    if advice.status != OK:
        return f"{_human(resource, current)} (keep)"
    recommended = advice.request if which == "request" else advice.limit
    new = "none" if recommended is None else _human(resource, recommended)
    return f"{_human(resource, current)} -> {new}"


def _basis_text(row: Row) -> str:
    if row.cpu.status != OK:
        return f"{row.cpu.status}: {row.cpu.basis}"
    return f"cpu {row.cpu.basis}; memory {row.memory.basis}"


def _evidence_text(row: Row, percentile: float) -> str:
    e = row.evidence
    ratio = e.throttled_ratio
    return "; ".join(
        [
            f"cpu p{percentile:g} {_human('cpu', e.cpu_percentile)} "
            f"peak {_human('cpu', e.cpu_peak)}",
            f"memory peak {_human('memory', e.memory_peak)}",
            f"{e.history_days:.1f}d",
            "oom n/a" if e.oom_kills is None else f"oom {e.oom_kills:.0f}",
            "throttled n/a" if ratio is None else f"throttled {ratio:.1%}",
        ]
    )


def table(report: Report) -> str:
    header = ["NAMESPACE", "WORKLOAD", "KIND", "CONTAINER", "CPU REQUEST", "CPU LIMIT"]
    header += ["MEMORY REQUEST", "MEMORY LIMIT", "BASIS", "EVIDENCE"]
    with_cost = report.prices.any
    if with_cost:
        header.append("COST/MONTH")
    lines = [header]
    for row in report.rows:
        key = row.evidence.key
        line = [key.namespace, key.workload, key.workload_kind, key.container]
        line += [_cell(row, r, w) for r in RESOURCES for w in ("request", "limit")]
        line += [_basis_text(row), _evidence_text(row, report.strategy.cpu_percentile)]
        if with_cost:
            cost = row.monthly_cost_difference
            line.append("n/a" if cost is None else f"{cost:+.2f}")
        lines.append(line)
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    text = "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)).rstrip()
        for line in lines
    )
    summary = (
        f"\n{len(report.rows)} containers, window {promql_duration(report.window_seconds)}, "
        f"evaluated at {datetime.fromtimestamp(report.at, UTC):%Y-%m-%d %H:%M:%S} UTC\n"
    )
    if with_cost:
        known = [r.monthly_cost_difference for r in report.rows]
        total = sum(c for c in known if c is not None)
        summary += f"monthly cost difference over priced rows: {total:+.2f}\n"
    return text + "\n" + summary


def _container_patch(row: Row) -> dict[str, Any] | None:
    requests: dict[str, str] = {}
    limits: dict[str, str | None] = {}
    if row.cpu.status == OK and row.cpu.request is not None:
        requests["cpu"] = format_cpu(row.cpu.request)
        limits["cpu"] = None if row.cpu.limit is None else format_cpu(row.cpu.limit)
    if row.memory.status == OK and row.memory.request is not None and row.memory.limit:
        requests["memory"] = format_memory(row.memory.request)
        limits["memory"] = format_memory(row.memory.limit)
    if not requests:
        return None
    return {
        "name": row.evidence.key.container,
        "resources": {"requests": requests, "limits": limits},
    }


def yaml_patches(report: Report) -> str:
    """One strategic merge patch per workload; a null CPU limit removes the limit."""
    documents = []
    rows = sorted(report.rows, key=lambda r: r.evidence.key)
    for (namespace, workload, kind), group in itertools.groupby(
        rows,
        key=lambda r: (
            r.evidence.key.namespace,
            r.evidence.key.workload,
            r.evidence.key.workload_kind,
        ),
    ):
        containers = [c for c in (_container_patch(r) for r in group) if c is not None]
        if not containers:
            continue
        path = POD_TEMPLATE.get(kind)
        if path is None:
            documents.append(
                f"# {kind} {namespace}/{workload}: its pod template cannot be patched; set "
                "these in whatever creates it:\n"
                + "".join(f"# {json.dumps(c, separators=(',', ':'))}\n" for c in containers)
            )
            continue
        patch: dict[str, Any] = {"spec": {"containers": containers}}
        for step in reversed(path):
            patch = {step: patch}
        inline = json.dumps(patch, separators=(",", ":"))
        documents.append(
            f"# kubectl -n {namespace} patch {kind.lower()} {workload} --type strategic "
            f"-p '{inline}'\n" + yaml.safe_dump(patch, sort_keys=False)
        )
    return "---\n".join(documents) if documents else "# no recommendations to patch\n"
