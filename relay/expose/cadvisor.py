"""The cadvisor profile: cAdvisor's family names and labels, so existing dashboards work unchanged.

Label set as the kubelet's /metrics/cadvisor: container, id, image, name, namespace, pod
(plus node, which a kubelet scrape adds by relabelling). Pod-level network series carry
an empty container and image, as cAdvisor's sandbox series do.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from kubensage_api.telemetry import telemetry_pb2 as tm
from relay.expose.families import FamilySet, present, seconds
from relay.expose.native import PSI_KINDS, known_pressure
from relay.expose.selection import current_containers, current_pods
from relay.state.store import NodeView

LABELS = ("node", "namespace", "pod", "container", "image", "name", "id")
NETWORK_LABELS = (*LABELS, "interface")
Extract = Callable[[tm.Container], float | None]

GAUGES: tuple[tuple[str, str, Extract], ...] = (
    (
        "container_memory_working_set_bytes",
        "Current working set in bytes.",
        lambda c: present(c.memory, "working_set_bytes"),
    ),
    (
        "container_memory_usage_bytes",
        "Current memory usage in bytes, including all memory.",
        lambda c: present(c.memory, "usage_bytes"),
    ),
    ("container_memory_rss", "Size of RSS in bytes.", lambda c: present(c.memory, "rss_bytes")),
    (
        "container_memory_swap",
        "Container swap usage in bytes.",
        lambda c: present(c, "swap_usage_bytes"),
    ),
    (
        "container_start_time_seconds",
        "Start time of the container since unix epoch in seconds.",
        lambda c: seconds(c.started_at_unix_nanos),
    ),
    (
        "container_spec_memory_limit_bytes",
        "Memory limit for the container.",
        lambda c: present(c.limits, "memory_bytes"),
    ),
)
COUNTERS: tuple[tuple[str, str, Extract], ...] = (
    (
        "container_cpu_usage_seconds_total",
        "Cumulative cpu time consumed in seconds.",
        lambda c: present(c.cpu, "usage_seconds_total"),
    ),
)
NETWORK = (
    ("receive_bytes", "receive_bytes"),
    ("receive_packets", "receive_packets"),
    ("receive_errors", "receive_errors"),
    ("receive_packets_dropped", "receive_drops"),
    ("transmit_bytes", "transmit_bytes"),
    ("transmit_packets", "transmit_packets"),
    ("transmit_errors", "transmit_errors"),
    ("transmit_packets_dropped", "transmit_drops"),
)


def cadvisor_families(views: Iterable[NodeView], out: FamilySet) -> None:
    for view in views:
        for pod, container in current_containers(view.report.pods):
            values = [
                view.node,
                pod.namespace,
                pod.name,
                container.name,
                container.image,
                container.id,
                container.id,
            ]
            for name, doc, extract in GAUGES:
                out.gauge(name, doc, LABELS, values, extract(container))
            for name, doc, extract in COUNTERS:
                out.counter(name, doc, LABELS, values, extract(container))
            for entry in known_pressure(container.pressure):
                for kind, meaning in PSI_KINDS:
                    if entry.HasField(kind):
                        out.counter(
                            f"container_pressure_{entry.resource}_{meaning}_seconds_total",
                            f"Total time duration {kind} tasks in the container have waited "
                            f"due to {entry.resource} congestion.",
                            LABELS,
                            values,
                            getattr(entry, kind).total_seconds,
                        )
        for pod in current_pods(view.report.pods):
            for interface in pod.network:
                values = [
                    view.node,
                    pod.namespace,
                    pod.name,
                    "",
                    "",
                    pod.sandbox_id,
                    pod.sandbox_id,
                    interface.name,
                ]
                for name, field in NETWORK:
                    out.counter(
                        f"container_network_{name}_total",
                        f"Cumulative count of {name.replace('_', ' ')}.",
                        NETWORK_LABELS,
                        values,
                        present(interface, field),
                    )
