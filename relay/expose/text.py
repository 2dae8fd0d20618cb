"""Prometheus text format 0.0.4 for one node's samples, written from the declarations.

Each row's labels are escaped once and reused by every family measured on it, which
is what keeps rendering a node cheap; values are written as Go writes floats, as
prometheus_client does.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, cast

from prometheus_client.utils import floatToGoString

from relay.series.rows import NodeContext
from relay.series.spec import Family, Profile, Subject
from relay.series.walk import walk

# family name -> (HELP and TYPE lines, sample lines) of one node
NodeText = dict[str, tuple[str, str]]
go_float = cast(Callable[[float], str], floatToGoString)


def escape_label_value(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def escape_help(text: str) -> str:
    return text.replace("\\", "\\\\").replace("\n", "\\n")


def _label_text(labels: Mapping[str, str]) -> str:
    return ",".join(f'{name}="{escape_label_value(value)}"' for name, value in labels.items())


def header(name: str, family: Family[Any]) -> str:
    return f"# HELP {name} {escape_help(family.help)}\n# TYPE {name} {family.kind.value}\n"


class TextSink:
    """Collects one node's sample lines per family name, headers kept apart for merging."""

    def __init__(self) -> None:
        self.samples: dict[str, list[str]] = {}
        self.headers: dict[str, str] = {}
        self._row = ""

    def row(self, subject: Subject[Any], labels: Mapping[str, str]) -> None:
        self._row = _label_text(labels)

    def sample(
        self, family: Family[Any], name: str, labels: Mapping[str, str] | None, value: float
    ) -> None:
        text = self._row
        if labels:
            extra = _label_text(labels)
            text = f"{text},{extra}" if text else extra
        lines = self.samples.get(name)
        if lines is None:
            lines = self.samples[name] = []
            self.headers[name] = header(name, family)
        lines.append(f"{name}{{{text}}} {go_float(value)}\n")


def render_node(profiles: Sequence[Profile], context: NodeContext) -> NodeText:
    sink = TextSink()
    walk(profiles, context, sink)
    return {name: (sink.headers[name], "".join(lines)) for name, lines in sink.samples.items()}


def merge(nodes: Iterable[NodeText]) -> str:
    """Several nodes' text as one exposition: each family's HELP/TYPE once, then its samples."""
    merged: dict[str, tuple[str, list[str]]] = {}
    for families in nodes:
        for name, (head, samples) in families.items():
            entry = merged.get(name)
            if entry is None:
                merged[name] = (head, [samples])
            else:
                entry[1].append(samples)
    return "".join(head + "".join(chunks) for head, chunks in merged.values())
