"""The native profile: kubensage_* families with Prometheus naming and base units."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Literal

from kubensage_api.telemetry import telemetry_pb2 as tm
from relay.enrich.kube import Enrichment, NoEnrichment
from relay.enrich.objects import PodInfo
from relay.expose.checks import check_families
from relay.expose.families import FamilySet, present, prometheus_label_names, seconds
from relay.expose.selection import current_containers, current_pods
from relay.state.store import NodeView

P = "kubensage_"
CONTAINER = ("node", "namespace", "pod", "container", "workload", "workload_kind")
POD = ("node", "namespace", "pod", "workload", "workload_kind")
POD_NETWORK = (*POD, "interface")
RESOURCE = (*CONTAINER, "resource", "unit")
NODE = ("node",)
PSI_RESOURCES = frozenset({"cpu", "memory", "io", "irq"})
CONTAINER_STATE_NAMES = {
    value: name.removeprefix("CONTAINER_STATE_").lower()
    for name, value in tm.ContainerState.items()
}
PsiKind = Literal["some", "full"]
PSI_KINDS: tuple[tuple[PsiKind, str], ...] = (("some", "waiting"), ("full", "stalled"))
NETWORK_COUNTERS = (
    ("receive", "bytes", "receive_bytes"),
    ("receive", "packets", "receive_packets"),
    ("receive", "errors", "receive_errors"),
    ("receive", "drops", "receive_drops"),
    ("transmit", "bytes", "transmit_bytes"),
    ("transmit", "packets", "transmit_packets"),
    ("transmit", "errors", "transmit_errors"),
    ("transmit", "drops", "transmit_drops"),
)
Extract = Callable[[tm.Container], float | None]

CONTAINER_GAUGES: tuple[tuple[str, str, Extract], ...] = (
    (
        "container_memory_working_set_bytes",
        "Working set: usage minus inactive file cache.",
        lambda c: present(c.memory, "working_set_bytes"),
    ),
    (
        "container_memory_usage_bytes",
        "All memory in use, including cache.",
        lambda c: present(c.memory, "usage_bytes"),
    ),
    (
        "container_memory_rss_bytes",
        "Anonymous and swap cache memory.",
        lambda c: present(c.memory, "rss_bytes"),
    ),
    (
        "container_fs_usage_bytes",
        "Bytes used by the container's writable layer.",
        lambda c: present(c.writable_layer, "used_bytes"),
    ),
    (
        "container_fs_inodes_used",
        "Inodes used by the container's writable layer.",
        lambda c: present(c.writable_layer, "inodes_used"),
    ),
    (
        "container_swap_usage_bytes",
        "Swap used by the container.",
        lambda c: present(c, "swap_usage_bytes"),
    ),
    (
        "container_start_time_seconds",
        "Unix time the container started.",
        lambda c: seconds(c.started_at_unix_nanos),
    ),
)
CONTAINER_COUNTERS: tuple[tuple[str, str, Extract], ...] = (
    (
        "container_cpu_usage_seconds_total",
        "CPU time consumed, summed over all cores.",
        lambda c: present(c.cpu, "usage_seconds_total"),
    ),
    (
        "container_memory_page_faults_total",
        "Minor page faults.",
        lambda c: present(c.memory, "page_faults"),
    ),
    (
        "container_memory_major_page_faults_total",
        "Major page faults.",
        lambda c: present(c.memory, "major_page_faults"),
    ),
)
NODE_MEMORY = (
    ("total", "total_bytes"),
    ("available", "available_bytes"),
    ("free", "free_bytes"),
    ("buffers", "buffers_bytes"),
    ("cached", "cached_bytes"),
    ("swap_total", "swap_total_bytes"),
    ("swap_free", "swap_free_bytes"),
)


def known_pressure(pressure: Iterable[tm.Pressure]) -> Iterable[tm.Pressure]:
    """PSI entries whose resource may become part of a metric name; others are ignored."""
    return (entry for entry in pressure if entry.resource in PSI_RESOURCES)


def add_pressure(
    out: FamilySet,
    scope: str,
    labels: tuple[str, ...],
    values: list[str],
    pressure: Iterable[tm.Pressure],
) -> None:
    for entry in known_pressure(pressure):
        for kind, meaning in PSI_KINDS:
            if not entry.HasField(kind):
                continue
            line: tm.PressureLine = getattr(entry, kind)
            out.counter(
                f"{P}{scope}_pressure_{entry.resource}_{meaning}_seconds_total",
                f"PSI {kind}: time {'some' if kind == 'some' else 'all'} tasks were stalled on "
                f"{entry.resource}.",
                labels,
                values,
                line.total_seconds,
            )


def add_network(
    out: FamilySet,
    prefix: str,
    labels: tuple[str, ...],
    values: list[str],
    interface: tm.NetworkInterface,
) -> None:
    for direction, unit, field in NETWORK_COUNTERS:
        out.counter(
            f"{prefix}_{direction}_{unit}_total",
            f"Network {unit} {direction}d.",
            labels,
            values,
            present(interface, field),
        )


class _PodContext:
    """Per-pod lookups done once per scrape: Kubernetes metadata and the workload."""

    def __init__(self, enrichment: Enrichment) -> None:
        self.enrichment = enrichment
        self._seen: dict[str, tuple[PodInfo | None, str, str]] = {}

    def __call__(self, pod: tm.Pod) -> tuple[PodInfo | None, str, str]:
        held = self._seen.get(pod.uid)
        if held is None:
            info = self.enrichment.pod(pod.uid)
            kind, name = self.enrichment.workload(info)
            held = self._seen[pod.uid] = (info, name, kind)
        return held


def _resources(out: FamilySet, values: list[str], info: PodInfo | None, name: str) -> None:
    spec = next((c for c in info.containers if c.name == name), None) if info else None
    for family, doc in (
        ("requests", "Resources the container requests (cores, bytes)."),
        ("limits", "Resource limits of the container (cores, bytes)."),
    ):
        cpu = getattr(spec, f"cpu_{family[:-1]}", None) if spec else None
        memory = getattr(spec, f"memory_{family[:-1]}", None) if spec else None
        out.gauge(f"{P}container_resource_{family}", doc, RESOURCE, [*values, "cpu", "core"], cpu)
        out.gauge(
            f"{P}container_resource_{family}", doc, RESOURCE, [*values, "memory", "byte"], memory
        )


def _containers(out: FamilySet, view: NodeView, context: _PodContext) -> None:
    runtime = view.report.runtime.name
    for pod, container in current_containers(view.report.pods):
        info, workload, kind = context(pod)
        values = [view.node, pod.namespace, pod.name, container.name, workload, kind]
        _resources(out, values, info, container.name)
        for name, doc, extract in CONTAINER_GAUGES:
            out.gauge(P + name, doc, CONTAINER, values, extract(container))
        for name, doc, extract in CONTAINER_COUNTERS:
            out.counter(P + name, doc, CONTAINER, values, extract(container))
        add_pressure(out, "container", CONTAINER, values, container.pressure)
        out.gauge(
            f"{P}container_info",
            "Container identity; always 1.",
            (*CONTAINER, "image", "image_id", "container_id", "runtime"),
            [*values, container.image, container.image_ref, container.id, runtime],
            1,
        )
        state = CONTAINER_STATE_NAMES.get(container.state, "unknown")
        out.gauge(
            f"{P}container_state",
            "Current container state as a label; always 1.",
            (*CONTAINER, "state"),
            [*values, state],
            1,
        )
        out.gauge(
            f"{P}container_restarts",
            "Restart attempt number the runtime gives the container.",
            CONTAINER,
            values,
            container.attempt,
        )


def _pods(out: FamilySet, view: NodeView, context: _PodContext) -> None:
    for pod in current_pods(view.report.pods):
        info, workload, kind = context(pod)
        values = [view.node, pod.namespace, pod.name, workload, kind]
        for interface in pod.network:
            add_network(out, f"{P}pod_network", POD_NETWORK, [*values, interface.name], interface)
        out.gauge(
            f"{P}pod_info",
            "Pod identity and scheduling facts; always 1.",
            (*POD, "uid", "qos_class", "priority_class", "host_network"),
            [
                *values,
                pod.uid,
                info.qos_class if info else "",
                info.priority_class if info else "",
                ("true" if info.host_network else "false") if info else "",
            ],
            1,
        )
        if info is not None and info.labels:
            names = prometheus_label_names(key for key, _ in info.labels)
            out.varying(
                f"{P}pod_labels",
                "Pod labels on the allowlist (--pod-labels), as label_<name>; always 1.",
                {
                    "node": view.node,
                    "namespace": pod.namespace,
                    "pod": pod.name,
                    **{names[key]: value for key, value in info.labels},
                },
                1,
            )


def _node(out: FamilySet, view: NodeView, enrichment: Enrichment) -> None:
    node, report = view.report.node, view.report
    meta = enrichment.node(view.node)
    values = [view.node]
    for mode, value in sorted(node.cpu_seconds_by_mode.items()):
        out.counter(
            f"{P}node_cpu_seconds_total",
            "CPU time per mode.",
            ("node", "mode"),
            [view.node, mode],
            value,
        )
    out.gauge(f"{P}node_cpus", "Logical CPUs.", NODE, values, node.cpu_count or None)
    for name, field in NODE_MEMORY:
        out.gauge(
            f"{P}node_memory_{name}_bytes",
            f"Memory {name.replace('_', ' ')}.",
            NODE,
            values,
            present(node.memory, field),
        )
    for window in ("1", "5", "15"):
        out.gauge(
            f"{P}node_load{window}",
            f"{window}-minute load average.",
            NODE,
            values,
            getattr(node.load, f"load{window}") if node.HasField("load") else None,
        )
    out.counter(
        f"{P}node_context_switches_total",
        "Context switches.",
        NODE,
        values,
        present(node, "context_switches"),
    )
    add_pressure(out, "node", NODE, values, node.pressure)
    for interface in node.interfaces:
        add_network(
            out, f"{P}node_network", ("node", "device"), [view.node, interface.name], interface
        )
    out.gauge(
        f"{P}node_boot_time_seconds",
        "Unix time the node booted.",
        NODE,
        values,
        seconds(node.boot_time_unix_nanos),
    )
    for fs in report.image_filesystems:
        out.gauge(
            f"{P}node_image_filesystem_usage_bytes",
            "Bytes the runtime uses for images.",
            ("node", "mountpoint"),
            [view.node, fs.mountpoint],
            present(fs, "used_bytes"),
        )
    out.gauge(
        f"{P}node_info",
        "Node identity; always 1.",
        (
            "node",
            "kernel_version",
            "os_image",
            "architecture",
            "runtime",
            "runtime_version",
            "agent_version",
            "kubelet_version",
            "region",
            "zone",
            "instance_type",
            "provider",
            "cluster",
        ),
        [
            view.node,
            node.kernel_release,
            node.os_image,
            node.architecture,
            report.runtime.name,
            report.runtime.version,
            report.agent_version,
            meta.kubelet_version if meta else "",
            meta.region if meta else "",
            meta.zone if meta else "",
            meta.instance_type if meta else "",
            meta.provider if meta else "",
            enrichment.cluster_name,
        ],
        1,
    )


def _agent(out: FamilySet, view: NodeView) -> None:
    health, values = view.report.health, [view.node]
    out.gauge(
        f"{P}agent_cycle_duration_seconds",
        "Duration of the agent's last collection.",
        NODE,
        values,
        health.cycle_duration_seconds,
    )
    out.gauge(
        f"{P}agent_queue_depth",
        "Reports waiting for an acknowledgement.",
        NODE,
        values,
        health.queue_depth,
    )
    out.gauge(
        f"{P}agent_interval_seconds",
        "Collection interval in force.",
        NODE,
        values,
        health.interval_seconds or None,
    )
    out.gauge(
        f"{P}agent_start_time_seconds",
        "Unix time the agent started.",
        NODE,
        values,
        seconds(health.started_at_unix_nanos),
    )
    for name, doc, value in (
        (
            "dropped_reports",
            "Reports dropped because the queue was full.",
            health.dropped_reports_total,
        ),
        ("reconnects", "Times the agent reconnected to a relay.", health.reconnects_total),
        ("cri_errors", "Failed CRI calls.", health.cri_errors_total),
    ):
        out.counter(f"{P}agent_{name}_total", doc, NODE, values, value)
    for collector, count in sorted(health.collector_errors_total.items()):
        out.counter(
            f"{P}agent_collector_errors_total",
            "Failures per collector.",
            ("node", "collector"),
            [view.node, collector],
            count,
        )
    out.gauge(
        f"{P}relay_last_report_timestamp_seconds",
        "Unix time the node's last report arrived.",
        NODE,
        values,
        view.received_at_unix,
    )
    out.gauge(
        f"{P}relay_node_connected",
        "1 while the node's agent holds a stream open.",
        NODE,
        values,
        1 if view.connected else 0,
    )
    out.gauge(
        f"{P}relay_node_last_sequence",
        "Sequence number of the node's newest accepted report; a jump means lost reports.",
        NODE,
        values,
        view.report.sequence,
    )


def native_families(
    views: Iterable[NodeView], out: FamilySet, enrichment: Enrichment | None = None
) -> None:
    context = _PodContext(enrichment if enrichment is not None else NoEnrichment())
    for view in views:
        _node(out, view, context.enrichment)
        _pods(out, view, context)
        _containers(out, view, context)
        _agent(out, view)
        check_families(out, view)
