"""The fleet page: which agents this relay holds, how fresh their data is, which struggle.

`GET /` renders HTML on the server (no script at all: it refreshes itself with a meta tag
and sorts through `?sort=<column>&order=asc|desc` links); `GET /api/v1/agents` gives the
same rows as JSON. Every string an agent sent is escaped before it reaches the page, and
the page forbids scripts by Content-Security-Policy as a second line.

Stale: no stream open, or no report for more than STALE_INTERVALS of its interval.
Struggling: in its newest report compared with the one before, dropped reports, CRI,
collector or check errors rose; or its queue holds more than one report; or a check is
not OK.
"""

from __future__ import annotations

import html
import json
import time
import urllib.parse
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

from kubensage_api.telemetry import telemetry_pb2 as tm
from kubensage_common.checkrules import state_name
from kubensage_common.httpserver import StartResponse, WsgiApp
from relay.series.rows import current_containers, exposable_checks
from relay.state.store import DEFAULT_INTERVAL_SECONDS, NodeStore, NodeView

STALE_INTERVALS = 2
REFRESH_SECONDS = 10
MAX_OUTPUT_CHARS = 4096
MAX_TEXT_CHARS = 256  # any other string an agent sent: a page row stays a row
MAX_FAILING_SHOWN = 8
SECURITY_HEADERS = [
    ("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'"),
    ("X-Content-Type-Options", "nosniff"),
    ("Cache-Control", "no-store"),
]


@dataclass(frozen=True)
class FailingCheck:
    name: str
    state: str
    output: str


@dataclass(frozen=True)
class AgentRow:
    node: str
    agent_id: str
    agent_version: str
    runtime: str
    runtime_version: str
    connected: bool
    connected_since_unix: float | None
    last_report_unix: float
    last_report_age_seconds: float
    interval_seconds: float
    queue_depth: int
    dropped_reports_total: int
    cri_errors_total: int
    collector_errors_total: int
    check_errors_total: int
    checks: int
    failing_checks: list[FailingCheck]
    pods: int
    containers: int
    sequence: int
    stale: bool
    struggling: list[str] = field(default_factory=list)


def _errors(health: tm.AgentHealth) -> tuple[int, int, int, int]:
    return (
        health.dropped_reports_total,
        health.cri_errors_total,
        sum(health.collector_errors_total.values()),
        health.check_errors_total,
    )


def struggles(health: tm.AgentHealth, previous: tm.AgentHealth | None, failing: int) -> list[str]:
    """Why an agent is struggling now; empty when it is not."""
    reasons = []
    if previous is not None:
        now, before = _errors(health), _errors(previous)
        for label, current, earlier in zip(
            ("dropping reports", "CRI errors", "collector errors", "check errors"),
            now,
            before,
            strict=True,
        ):
            if current > earlier:
                reasons.append(label)
    if health.queue_depth > 1:
        reasons.append(f"queue {health.queue_depth}")
    if failing:
        reasons.append(f"{failing} failing check{'s' if failing > 1 else ''}")
    return reasons


def _cut(text: str) -> str:
    return text if len(text) <= MAX_TEXT_CHARS else text[: MAX_TEXT_CHARS - 1] + "…"


def agent_row(view: NodeView, now: float) -> AgentRow:
    report, health = view.report, view.report.health
    interval = health.interval_seconds or DEFAULT_INTERVAL_SECONDS
    age = max(0.0, now - view.received_at_unix)
    checks = list(exposable_checks(view))
    failing = [
        FailingCheck(r.name, state_name(r.state), r.output[:MAX_OUTPUT_CHARS])
        for r in checks
        if r.state != tm.CHECK_STATE_OK
    ]
    return AgentRow(
        node=_cut(view.node),
        agent_id=_cut(view.agent_id),
        agent_version=_cut(report.agent_version),
        runtime=_cut(report.runtime.name),
        runtime_version=_cut(report.runtime.version),
        connected=view.connected,
        connected_since_unix=view.connected_since_unix,
        last_report_unix=view.received_at_unix,
        last_report_age_seconds=round(age, 3),
        interval_seconds=interval,
        queue_depth=health.queue_depth,
        dropped_reports_total=health.dropped_reports_total,
        cri_errors_total=health.cri_errors_total,
        collector_errors_total=sum(health.collector_errors_total.values()),
        check_errors_total=health.check_errors_total,
        checks=len(checks),
        failing_checks=failing,
        pods=len(report.pods),
        containers=len(current_containers(report.pods)),
        sequence=report.sequence,
        stale=not view.connected or age > STALE_INTERVALS * interval,
        struggling=struggles(health, view.previous_health, len(failing)),
    )


@dataclass(frozen=True)
class Column:
    key: str
    title: str
    sort_key: Callable[[AgentRow], Any]
    cell: Callable[[AgentRow, float], str]  # HTML, already escaped
    numeric: bool = False


def _text(value: object) -> str:
    return html.escape(str(value), quote=True)


def duration(seconds: float) -> str:
    seconds = max(0, int(seconds))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m {seconds % 60}s"
    if seconds < 86400:
        return f"{seconds // 3600}h {seconds % 3600 // 60}m"
    return f"{seconds // 86400}d {seconds % 86400 // 3600}h"


def _utc(unix: float) -> str:
    return datetime.fromtimestamp(unix, UTC).strftime("%Y-%m-%d %H:%M:%SZ")


def _status(row: AgentRow) -> int:
    """Sorts the worst first: stale, then struggling, then fine."""
    return 0 if row.stale else 1 if row.struggling else 2


def _status_cell(row: AgentRow, _now: float) -> str:
    parts = []
    if row.stale:
        parts.append('<span class="badge stale">stale</span>')
    if row.struggling:
        parts.extend(
            f'<span class="badge struggling">{_text(why)}</span>' for why in row.struggling
        )
    return " ".join(parts) or '<span class="badge ok">ok</span>'


def _since_cell(row: AgentRow, now: float) -> str:
    if row.connected_since_unix is None:
        return '<span class="muted">not connected</span>'
    return (
        f'<span title="{_utc(row.connected_since_unix)}">'
        f"{duration(now - row.connected_since_unix)} ago</span>"
    )


def _agent_id_cell(row: AgentRow, _now: float) -> str:
    """Ids are long (UUIDs): the start tells them apart, the whole one is in the tooltip."""
    short = row.agent_id if len(row.agent_id) <= 13 else row.agent_id[:8] + "…"
    return f'<code title="{_text(row.agent_id)}">{_text(short)}</code>'


def _failing_cell(row: AgentRow, _now: float) -> str:
    if not row.failing_checks:
        return f'<span class="muted">{row.checks} ok</span>' if row.checks else ""
    shown = [
        f'<span class="check {check.state}" title="{_text(check.output)}">'
        f"{_text(check.name)} ({check.state})</span>"
        for check in row.failing_checks[:MAX_FAILING_SHOWN]
    ]
    hidden = len(row.failing_checks) - MAX_FAILING_SHOWN
    if hidden > 0:
        shown.append(f"+{hidden} more")
    return "<br>".join(shown)


def _number(attribute: str) -> Callable[[AgentRow, float], str]:
    return lambda row, _now: _text(getattr(row, attribute))


COLUMNS = (
    Column("status", "Status", _status, _status_cell),
    Column("node", "Node", lambda r: r.node, lambda r, _: _text(r.node)),
    Column("agent_id", "Agent id", lambda r: r.agent_id, _agent_id_cell),
    Column(
        "agent_version", "Agent", lambda r: r.agent_version, lambda r, _: _text(r.agent_version)
    ),
    Column(
        "runtime",
        "Runtime",
        lambda r: (r.runtime, r.runtime_version),
        lambda r, _: _text(f"{r.runtime} {r.runtime_version}".strip()),
    ),
    Column(
        "connected_since",
        "Connected since",
        lambda r: r.connected_since_unix or float("inf"),
        _since_cell,
    ),
    Column(
        "age",
        "Last report",
        lambda r: r.last_report_age_seconds,
        lambda r, _: (
            f'<span title="{_utc(r.last_report_unix)}">'
            f"{duration(r.last_report_age_seconds)} ago</span>"
        ),
        numeric=True,
    ),
    Column(
        "interval",
        "Interval",
        lambda r: r.interval_seconds,
        lambda r, _: f"{r.interval_seconds:g}s",
        numeric=True,
    ),
    Column("queue", "Queue", lambda r: r.queue_depth, _number("queue_depth"), numeric=True),
    Column(
        "dropped",
        "Dropped",
        lambda r: r.dropped_reports_total,
        _number("dropped_reports_total"),
        numeric=True,
    ),
    Column(
        "cri_errors", "CRI errors", lambda r: r.cri_errors_total, _number("cri_errors_total"), True
    ),
    Column(
        "collector_errors",
        "Collector errors",
        lambda r: r.collector_errors_total,
        _number("collector_errors_total"),
        numeric=True,
    ),
    Column(
        "failing_checks",
        "Failing checks",
        lambda r: (len(r.failing_checks), r.check_errors_total),
        _failing_cell,
    ),
    Column("containers", "Containers", lambda r: r.containers, _number("containers"), True),
)
COLUMN_BY_KEY = {column.key: column for column in COLUMNS}
DEFAULT_SORT = "node"


def sorted_rows(rows: Iterable[AgentRow], sort: str, descending: bool) -> list[AgentRow]:
    column = COLUMN_BY_KEY.get(sort, COLUMN_BY_KEY[DEFAULT_SORT])
    ordered = sorted(rows, key=lambda r: r.node)  # ties stay in node order
    return sorted(ordered, key=column.sort_key, reverse=descending)


def _order(query: dict[str, list[str]]) -> tuple[str, bool]:
    sort = query.get("sort", [DEFAULT_SORT])[0]
    if sort not in COLUMN_BY_KEY:
        sort = DEFAULT_SORT
    return sort, query.get("order", ["asc"])[0] == "desc"


STYLE = """
body { font: 13px/1.35 system-ui, sans-serif; margin: 1.2em; color: #1d232a; }
h1 { font-size: 1.25em; margin: 0 0 .3em; }
.summary { color: #52606d; margin-bottom: 1em; }
table { border-collapse: collapse; width: 100%; }
th, td { padding: .3em .5em; border-bottom: 1px solid #e4e7eb; text-align: left;
  vertical-align: top; max-width: 16em; overflow-wrap: anywhere; }
th { background: #f5f7fa; position: sticky; top: 0; white-space: nowrap; }
th a { color: inherit; text-decoration: none; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
tr.stale td { background: #fdecea; }
tr.struggling td { background: #fff8e1; }
.badge { display: inline-block; margin: 0 .2em .2em 0; padding: .05em .45em;
  border-radius: .6em; font-size: .85em; white-space: nowrap; }
.badge.ok { background: #e3f9e5; color: #0e5e2a; }
.badge.stale { background: #f8c9c3; color: #7a1212; }
.badge.struggling { background: #ffe3a3; color: #6b4100; }
.check.critical, .check.unknown { color: #a61b1b; }
.check.warning { color: #8a5a00; }
.muted { color: #7b8794; }
code { font-size: .9em; white-space: nowrap; }
"""


def render_page(rows: list[AgentRow], sort: str, descending: bool, now: float) -> str:
    stale = sum(row.stale for row in rows)
    struggling = sum(bool(row.struggling) for row in rows)
    headers = []
    for column in COLUMNS:
        flip = "asc" if column.key == sort and descending else "desc"
        order = flip if column.key == sort else ("desc" if column.numeric else "asc")
        arrow = (" ▼" if descending else " ▲") if column.key == sort else ""
        query = urllib.parse.urlencode({"sort": column.key, "order": order})
        css = ' class="num"' if column.numeric else ""
        headers.append(f'<th{css}><a href="?{query}">{_text(column.title)}{arrow}</a></th>')
    body = []
    for row in rows:
        css = "stale" if row.stale else "struggling" if row.struggling else ""
        cells = "".join(
            f"<td{' class=num' if column.numeric else ''}>{column.cell(row, now)}</td>"
            for column in COLUMNS
        )
        body.append(f'<tr class="{css}" data-node="{_text(row.node)}">{cells}</tr>')
    empty = "" if rows else f'<tr><td colspan="{len(COLUMNS)}">No agent reports yet.</td></tr>'
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        f'<meta http-equiv="refresh" content="{REFRESH_SECONDS}">'
        "<title>kubensage relay: fleet</title>"
        f"<style>{STYLE}</style></head><body>"
        "<h1>kubensage relay: connected agents</h1>"
        f'<p class="summary">{len(rows)} nodes, {stale} stale, {struggling} struggling; '
        f"as of {_utc(now)}, refreshed every {REFRESH_SECONDS}s. "
        '<a href="metrics">metrics</a> · <a href="api/v1/agents">JSON</a></p>'
        f"<table><thead><tr>{''.join(headers)}</tr></thead>"
        f"<tbody>{''.join(body)}{empty}</tbody></table></body></html>\n"
    )


class FleetPage:
    """WSGI app for `/` and `/api/v1/agents`, reading the store's live nodes."""

    def __init__(self, store: NodeStore, clock: Callable[[], float] = time.time) -> None:
        self.store = store
        self.clock = clock

    def rows(
        self, now: float, sort: str = DEFAULT_SORT, descending: bool = False
    ) -> list[AgentRow]:
        return sorted_rows((agent_row(v, now) for v in self.store.snapshot()), sort, descending)

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        sort, descending = _order(urllib.parse.parse_qs(environ.get("QUERY_STRING", "")))
        now = self.clock()
        rows = self.rows(now, sort, descending)
        if environ.get("PATH_INFO", "") == API_PATH:
            document = {"generated_at_unix": now, "agents": [asdict(row) for row in rows]}
            body = json.dumps(document, indent=1).encode()
            content_type = "application/json"
        else:
            body = render_page(rows, sort, descending, now).encode()
            content_type = "text/html; charset=utf-8"
        start_response(
            "200 OK",
            [("Content-Type", content_type), ("Content-Length", str(len(body))), *SECURITY_HEADERS],
        )
        return [body]


PAGE_PATH = "/"
API_PATH = "/api/v1/agents"


def fleet_routes(store: NodeStore) -> dict[str, WsgiApp]:
    page = FleetPage(store)
    return {PAGE_PATH: page, API_PATH: page}
