"""Classic Grafana dashboard JSON, built from small pieces so every panel reads the same.

Every query goes to the `${datasource}` variable (type prometheus), never to a named
data source; panels are laid out left to right on Grafana's 24-column grid and get
their ids in order, so ids are unique by construction.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

# the newest migration of Grafana's classic dashboard model (LATEST_VERSION in
# apps/dashboard/pkg/migration/schemaversion, Grafana 12.2 and later)
SCHEMA_VERSION = 42
DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}
GRID_COLUMNS = 24


@dataclass(frozen=True)
class Query:
    expr: str
    legend: str = ""


@dataclass(frozen=True)
class Panel:
    """A panel before layout: its JSON without id and position, and its size."""

    body: dict[str, Any]
    width: int = 12
    height: int = 8
    queries: tuple[Query, ...] = field(default_factory=tuple)


def _targets(queries: tuple[Query, ...]) -> list[dict[str, Any]]:
    return [
        {
            "datasource": DATASOURCE,
            "expr": query.expr,
            "legendFormat": query.legend or "__auto",
            "refId": chr(ord("A") + index),
        }
        for index, query in enumerate(queries)
    ]


def timeseries(
    title: str,
    description: str,
    *queries: Query,
    unit: str = "short",
    width: int = 12,
    stacked: bool = False,
) -> Panel:
    custom: dict[str, Any] = {"fillOpacity": 10, "showPoints": "never"}
    if stacked:
        custom["stacking"] = {"mode": "normal", "group": "A"}
    return Panel(
        {
            "type": "timeseries",
            "title": title,
            "description": description,
            "datasource": DATASOURCE,
            "targets": _targets(queries),
            "fieldConfig": {"defaults": {"unit": unit, "custom": custom}, "overrides": []},
            "options": {
                "legend": {"displayMode": "table", "placement": "bottom", "showLegend": True},
                "tooltip": {"mode": "multi", "sort": "desc"},
            },
        },
        width=width,
        queries=queries,
    )


def stat(title: str, description: str, query: Query, unit: str = "short", width: int = 6) -> Panel:
    return Panel(
        {
            "type": "stat",
            "title": title,
            "description": description,
            "datasource": DATASOURCE,
            "targets": _targets((query,)),
            "fieldConfig": {"defaults": {"unit": unit}, "overrides": []},
            "options": {
                "reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
                "colorMode": "value",
                "graphMode": "area",
                "textMode": "auto",
            },
        },
        width=width,
        height=4,
        queries=(query,),
    )


def row(title: str) -> Panel:
    return Panel(
        {"type": "row", "title": title, "collapsed": False, "panels": []}, width=24, height=1
    )


def layout(panels: list[Panel]) -> list[dict[str, Any]]:
    """Ids 1..n in order; positions flowing left to right, a row (or a panel that does not
    fit) starting a new line."""
    placed: list[dict[str, Any]] = []
    x = y = line_height = 0
    for number, panel in enumerate(panels, start=1):
        if x + panel.width > GRID_COLUMNS or panel.body["type"] == "row":
            x, y, line_height = 0, y + line_height, 0
        placed.append(
            {
                **panel.body,
                "id": number,
                "gridPos": {"h": panel.height, "w": panel.width, "x": x, "y": y},
            }
        )
        x += panel.width
        line_height = max(line_height, panel.height)
        if panel.body["type"] == "row":
            x, y, line_height = 0, y + line_height, 0
    return placed


def datasource_variable() -> dict[str, Any]:
    return {
        "name": "datasource",
        "label": "Data source",
        "type": "datasource",
        "query": "prometheus",
        "current": {},
        "hide": 0,
        "refresh": 1,
        "regex": "",
    }


def query_variable(
    name: str, label: str, label_values_of: str, label_name: str, include_all: bool = False
) -> dict[str, Any]:
    """A variable listing the values of `label_name` on the series `label_values_of` selects."""
    query = f"label_values({label_values_of}, {label_name})"
    variable: dict[str, Any] = {
        "name": name,
        "label": label,
        "type": "query",
        "datasource": DATASOURCE,
        "query": {"query": query, "refId": f"{name}-values"},
        "refresh": 2,
        "sort": 1,
        "hide": 0,
        "multi": False,
        "includeAll": include_all,
        "current": {},
        "regex": "",
    }
    if include_all:
        # matches every value, the empty one too: series without the label still show
        variable["allValue"] = ".*"
    return variable


def dashboard(
    uid: str,
    title: str,
    description: str,
    variables: list[dict[str, Any]],
    panels: list[Panel],
) -> dict[str, Any]:
    return {
        "uid": uid,
        "title": title,
        "description": description,
        "tags": ["kubensage"],
        "timezone": "browser",
        "editable": True,
        "graphTooltip": 1,
        "refresh": "30s",
        "time": {"from": "now-1h", "to": "now"},
        "schemaVersion": SCHEMA_VERSION,
        "templating": {"list": variables},
        "annotations": {"list": []},
        "links": [
            {
                "title": "kubensage",
                "type": "dashboards",
                "tags": ["kubensage"],
                "asDropdown": True,
                "includeVars": True,
                "keepTime": True,
            }
        ],
        "panels": layout(panels),
    }


def panel_queries(board: dict[str, Any]) -> list[tuple[str, list[str]]]:
    """(panel title, its query expressions) for every panel with queries."""
    return [
        (panel["title"], [target["expr"] for target in panel["targets"]])
        for panel in board["panels"]
        if panel.get("targets")
    ]


def variable_queries(board: dict[str, Any]) -> list[tuple[str, str]]:
    """(variable name, its label_values query) for every query variable."""
    return [
        (variable["name"], variable["query"]["query"])
        for variable in board["templating"]["list"]
        if variable["type"] == "query"
    ]
