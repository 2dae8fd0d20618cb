"""Prometheus rule groups as data, in the order the rule file format writes them."""

from __future__ import annotations

import textwrap
from dataclasses import dataclass, field
from typing import Any


def promql(text: str) -> str:
    """An expression written as an indented block, without the indent or outer blank lines."""
    return textwrap.dedent(text).strip()


@dataclass(frozen=True)
class Recording:
    record: str
    expr: str

    def as_dict(self) -> dict[str, Any]:
        return {"record": self.record, "expr": self.expr}


@dataclass(frozen=True)
class Alert:
    alert: str
    expr: str
    for_: str
    severity: str
    summary: str
    description: str
    runbook_url: str

    def as_dict(self) -> dict[str, Any]:
        rule: dict[str, Any] = {"alert": self.alert, "expr": self.expr}
        if self.for_ != "0m":
            rule["for"] = self.for_
        rule["labels"] = {"severity": self.severity}
        rule["annotations"] = {
            "summary": self.summary,
            "description": self.description,
            "runbook_url": self.runbook_url,
        }
        return rule


@dataclass(frozen=True)
class Group:
    name: str
    rules: tuple[Recording | Alert, ...] = field(default_factory=tuple)

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "rules": [rule.as_dict() for rule in self.rules]}
