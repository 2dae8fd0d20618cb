"""The benchmark's results: printed as a table and written to docs/benchmarks.md."""

from __future__ import annotations

import os
import platform
import subprocess
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path


@dataclass
class Row:
    section: str
    measure: str
    value: str
    note: str = ""


@dataclass
class Results:
    rows: list[Row] = field(default_factory=list)
    targets: list[Row] = field(default_factory=list)

    def add(self, section: str, measure: str, value: str, note: str = "") -> None:
        row = Row(section, measure, value, note)
        self.rows.append(row)
        print(f"  {section:<14} {measure:<58} {value:>16}  {note}", flush=True)

    def target(self, goal: str, measured: str, verdict: str) -> None:
        self.targets.append(Row("target", goal, measured, verdict))
        print(f"  target         {goal:<58} {measured:>16}  {verdict}", flush=True)


def machine() -> list[str]:
    model = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor(),
    )
    memory_kib = next(
        int(line.split()[1])
        for line in Path("/proc/meminfo").read_text().splitlines()
        if line.startswith("MemTotal:")
    )

    def version(argv: list[str]) -> str:
        try:
            out = subprocess.run(argv, capture_output=True, text=True, timeout=10, check=False)
        except OSError:
            return "not installed"
        return (
            (out.stdout or out.stderr).strip().splitlines()[0]
            if (out.stdout or out.stderr)
            else "unknown"
        )

    return [
        f"- CPU: {model}, {os.cpu_count()} logical CPUs",
        f"- Memory: {memory_kib / 1024 / 1024:.1f} GiB",
        f"- Kernel: {platform.release()} ({platform.machine()})",
        f"- Python: {platform.python_version()}",
        f"- containerd: {version(['containerd', '--version'])}",
        f"- node_exporter: {version(['prometheus-node-exporter', '--version'])}",
        f"- pushgateway: {version(['prometheus-pushgateway', '--version'])}",
        "- VictoriaMetrics and vmagent: "
        + version(["dpkg-query", "-W", "-f=${Version}", "victoria-metrics"]),
    ]


def write_markdown(results: Results, path: Path, seconds: float) -> None:
    lines = [
        "# kubensage benchmarks",
        "",
        f"Written by `make bench` on {datetime.now(UTC):%Y-%m-%d %H:%M} UTC in {seconds:.0f} s. "
        "Every figure was measured in this one run on this machine:",
        "",
        *machine(),
        "",
        "Benchmarks measure; tests never assert timings. Figures on a 2-core machine include "
        "the load generators competing for the same cores.",
        "",
        "## Figures",
        "",
        "| section | measure | value | note |",
        "|---|---|---:|---|",
        *(f"| {r.section} | {r.measure} | {r.value} | {r.note} |" for r in results.rows),
        "",
        "## Targets",
        "",
        "| goal | measured | verdict |",
        "|---|---:|---|",
        *(f"| {r.measure} | {r.value} | {r.note} |" for r in results.targets),
        "",
    ]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines))
