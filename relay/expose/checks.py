"""Check-script results as native families, declared as data: one entry per family with its
name, type, unit, help, labels (name -> value per sample) and extractor, so they fold
into a relay-wide declaration table unchanged.

Only results whose name follows the agents' naming rule are exposed, each name once and
at most MAX_CHECKS_PER_NODE per node: the name is a label value, and one repeated name
would give Prometheus duplicate series.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Literal

from kubensage_api.telemetry import telemetry_pb2 as tm
from kubensage_common.checkrules import STATE_NAMES, is_check_name, state_name
from kubensage_common.logsetup import OnceLogger
from relay.expose.families import FamilySet, seconds
from relay.state.store import NodeView

MAX_CHECKS_PER_NODE = 64
Samples = Iterable[tuple[dict[str, str], float | None]]


@dataclass(frozen=True)
class CheckFamily:
    name: str
    type: Literal["gauge", "counter"]
    unit: str
    help: str
    labels: tuple[str, ...]  # beyond node and check
    extract: Callable[[tm.CheckResult], Samples]


def _state(result: tm.CheckResult) -> Samples:
    current = state_name(result.state)
    return (({"state": name}, 1.0 if name == current else 0.0) for name in STATE_NAMES.values())


def _runs(result: tm.CheckResult) -> Samples:
    return (
        ({"result": name}, float(result.runs_total[name]))
        for name in STATE_NAMES.values()
        if name in result.runs_total
    )


CHECK_FAMILIES = (
    CheckFamily(
        "kubensage_check_status",
        "gauge",
        "",
        "1 for the check's current state, 0 for the other states (Nagios: ok, warning, "
        "critical, unknown).",
        ("state",),
        _state,
    ),
    CheckFamily(
        "kubensage_check_duration_seconds",
        "gauge",
        "seconds",
        "Wall time of the check's newest run.",
        (),
        lambda r: [({}, r.duration_seconds)],
    ),
    CheckFamily(
        "kubensage_check_last_run_timestamp_seconds",
        "gauge",
        "seconds",
        "Unix time the check's newest run started.",
        (),
        lambda r: [({}, seconds(r.ran_at_unix_nanos))],
    ),
    CheckFamily(
        "kubensage_check_runs_total",
        "counter",
        "",
        "Runs of the check since its agent started, by result.",
        ("result",),
        _runs,
    ),
)

_once = OnceLogger()


def exposable_checks(view: NodeView) -> Iterator[tm.CheckResult]:
    """The node's results that may become series: well named, each name once, capped."""
    seen: set[str] = set()
    for result in view.report.checks:
        if len(seen) >= MAX_CHECKS_PER_NODE:
            _once.problem(f"checks:{view.node}:cap", f"node {view.node}: checks over the cap")
            return
        if not is_check_name(result.name) or result.name in seen:
            _once.problem(
                f"checks:{view.node}:name",
                f"node {view.node}: check result {result.name[:64]!r} skipped "
                "(invalid or repeated name)",
            )
            continue
        seen.add(result.name)
        yield result


def check_families(out: FamilySet, view: NodeView) -> None:
    for result in exposable_checks(view):
        for family in CHECK_FAMILIES:
            add = out.gauge if family.type == "gauge" else out.counter
            for labels, value in family.extract(result):
                names = ("node", "check", *family.labels)
                add(
                    family.name,
                    family.help,
                    names,
                    [view.node, result.name, *(labels[name] for name in family.labels)],
                    value,
                )
    out.counter(
        "kubensage_agent_check_errors_total",
        "Check runs that were refused (ownership, mode, manifest) or could not start.",
        ("node",),
        [view.node],
        view.report.health.check_errors_total,
    )
