"""The real node_exporter (Debian's package) as the reference for the agent's node figures.

It runs with upstream 1.5.0's filter defaults, which the agent shares and Debian's package
changes, so both sides see the same mounts, disks and interfaces.
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from kubensage_agent.collectors.node.diskstats import DEFAULT_DEVICE_EXCLUDE
from kubensage_agent.collectors.node.filesystem import (
    DEFAULT_FS_TYPES_EXCLUDE,
    DEFAULT_MOUNT_POINTS_EXCLUDE,
)
from kubensage_lab.processes import Service, free_port, http_get
from tests.conftest import require

EXPORTER = "prometheus-node-exporter"
# node_exporter's collectors for what the agent's node collectors read
COLLECTORS = (
    "cpu",
    "stat",
    "meminfo",
    "loadavg",
    "vmstat",
    "filefd",
    "netdev",
    "conntrack",
    "diskstats",
    "filesystem",
    "timex",
    "time",
    "uname",
    "os",
)
LabelSet = frozenset[tuple[str, str]]
Series = dict[str, dict[LabelSet, float]]
TYPE_LINE = re.compile(r"^# TYPE (\S+) (\S+)$", re.MULTILINE)


@dataclass(frozen=True)
class Scrape:
    """One exposition: each family's TYPE and each sample by name and label set."""

    types: dict[str, str]
    series: Series


def parse(text: str) -> Scrape:
    series: Series = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            series.setdefault(sample.name, {})[frozenset(sample.labels.items())] = sample.value
    return Scrape(dict(TYPE_LINE.findall(text)), series)


def scrape(url: str) -> Scrape:
    status, body = http_get(url, timeout=30)
    assert status == 200, body
    return parse(body)


@contextmanager
def node_exporter(log_dir: Path, collectors: tuple[str, ...] = COLLECTORS) -> Iterator[str]:
    """A node_exporter on a free loopback port with only `collectors`; yields its /metrics URL."""
    require(shutil.which(EXPORTER) is not None, f"{EXPORTER} (Debian package) is the reference")
    port = free_port()
    service = Service(
        "node-exporter",
        [
            EXPORTER,
            f"--web.listen-address=127.0.0.1:{port}",
            "--collector.disable-defaults",
            *(f"--collector.{name}" for name in collectors),
            f"--collector.filesystem.mount-points-exclude={DEFAULT_MOUNT_POINTS_EXCLUDE}",
            f"--collector.filesystem.fs-types-exclude={DEFAULT_FS_TYPES_EXCLUDE}",
            f"--collector.diskstats.device-exclude={DEFAULT_DEVICE_EXCLUDE}",
            # Debian leaves lo out; upstream 1.5 and the agent keep every interface
            "--collector.netdev.device-exclude=",
        ],
        log_dir,
    )
    url = f"http://127.0.0.1:{port}/metrics"
    service.start().wait_http(url)
    try:
        yield url
    finally:
        service.stop()


def readme_not_served(readme: Path) -> list[str]:
    """The node_exporter families (shell patterns) the README says the profile lacks."""
    text = readme.read_text()
    section = text.index("## Replacing node_exporter")
    start = text.index("**Not served**", section)
    return re.findall(r"`(node_[a-zA-Z0-9_*]+)`", text[start : text.index("\n## ", start)])
