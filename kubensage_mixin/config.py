"""The selectors and thresholds every rule, alert and dashboard is written against.

Defaults match deploy/kubernetes/: Prometheus scrapes the relays as job
"kubensage-relay" (prometheus-scrape-config.yaml, servicemonitor.yaml), and a
multi-cluster Prometheus tells clusters apart by a `cluster` label it adds (a target
or external label). Change them with `make monitoring` variables (see render.py).
"""

from __future__ import annotations

from dataclasses import dataclass

DEFAULT_RUNBOOK_URL = "https://github.com/kubensage/kubensage/blob/main/docs/runbook.md"


@dataclass(frozen=True)
class Config:
    # every kubensage series comes from a relay (node series and the relay's own), so
    # one selector picks them all; empty for series that arrive by remote write
    relay_selector: str = 'job="kubensage-relay"'
    cluster_label: str = "cluster"
    runbook_url: str = DEFAULT_RUNBOOK_URL
    # kubernetes-mixin's CPUThrottlingHigh threshold
    cpu_throttling_percent: int = 25
    memory_near_limit_ratio: float = 0.9
    # mounts the filesystem alerts look at (node-mixin's fsSelector, fsMountpointSelector)
    filesystem_selector: str = 'fstype!="", mountpoint!=""'
    # node interfaces counted as the node's traffic (node-mixin's *_excluding_lo)
    node_interface_selector: str = 'device!="lo"'
    # how long a node that vanished from every relay keeps alerting
    vanished_node_lookback: str = "1h"

    def selector(self, *matchers: str) -> str:
        """`{relay selector, matchers...}` with empty parts left out."""
        parts = [m for m in (self.relay_selector, *matchers) if m]
        return "{" + ", ".join(parts) + "}"

    def runbook(self, alert: str) -> str:
        return f"{self.runbook_url}#{alert.lower()}"
