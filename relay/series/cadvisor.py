"""The cadvisor profile: cAdvisor's names, types, units and labels, as the kubelet serves them.

Label set as the kubelet's /metrics/cadvisor: container, id (the cgroup path), image,
name (the runtime's container id), namespace, pod, plus node, which a kubelet scrape
adds by relabelling. Pod network series sit on the sandbox (id its cgroup, name its
id) with an empty container and image, as cAdvisor's pause-container series do; block
devices are named /dev/<kernel name> as cAdvisor names them. The kubernetes-mixin's
rules, alerts and dashboards read these families unchanged.
"""

from __future__ import annotations

from typing import Any

from kubensage_api.telemetry import telemetry_pb2 as tm
from relay.series.rows import ContainerRow, Item, PodRow
from relay.series.spec import Family, Kind, Profile, Subject
from relay.series.values import PSI_MEANINGS, item_field, present, psi_total, seconds

COUNTER, GAUGE = Kind.COUNTER, Kind.GAUGE
NETWORK = (
    ("receive_bytes", "receive_bytes", "bytes received"),
    ("receive_packets", "receive_packets", "packets received"),
    ("receive_errors", "receive_errors", "errors encountered while receiving"),
    ("receive_packets_dropped", "receive_drops", "packets dropped while receiving"),
    ("transmit_bytes", "transmit_bytes", "bytes transmitted"),
    ("transmit_packets", "transmit_packets", "packets transmitted"),
    ("transmit_errors", "transmit_errors", "errors encountered while transmitting"),
    ("transmit_packets_dropped", "transmit_drops", "packets dropped while transmitting"),
)
PSI_RESOURCE_NAMES = {"cpu": "CPU", "memory": "memory", "io": "IO"}


def _sandbox_cgroup(pod: tm.Pod) -> str:
    """The sandbox's cgroup as cAdvisor names it (its `id`): beside its containers' and
    named as they are, with the sandbox's id (`<pod cgroup>/<id>` with cgroupfs,
    `.../cri-containerd-<id>.scope` or `crio-<id>.scope` with systemd); the bare sandbox
    id while no container's cgroup is known."""
    for container in pod.containers:
        parent, _, leaf = container.cgroup_path.rpartition("/")
        if parent and container.id and container.id in leaf:
            return f"{parent}/{leaf.replace(container.id, pod.sandbox_id)}"
    return pod.sandbox_id


def _device(row: Item[ContainerRow, Any]) -> str:
    name = row.item.device
    return f"/dev/{name}" if name and ":" not in name else ""


CONTAINER: Subject[ContainerRow] = Subject(
    "container",
    "The current attempt of each container.",
    lambda context: context.containers(),
    {
        "node": lambda r: r.pod.context.view.node,
        "namespace": lambda r: r.pod.pod.namespace,
        "pod": lambda r: r.pod.pod.name,
        "container": lambda r: r.container.name,
        "image": lambda r: r.container.image,
        "name": lambda r: r.container.id,
        "id": lambda r: r.container.cgroup_path or r.container.id,
    },
)
CONTAINER_DEVICE = CONTAINER.part(
    "container block device",
    "Each block device a container did I/O on.",
    lambda context: (
        Item(row, device) for row in context.containers() for device in row.container.block_io
    ),
    {"device": _device},
)
SANDBOX_INTERFACE: Subject[Item[PodRow, Any]] = Subject(
    "sandbox interface",
    "Each network interface of a pod with its own network namespace.",
    lambda context: (
        Item(pod, interface) for pod in context.pods() for interface in pod.pod.network
    ),
    {
        "node": lambda r: r.parent.context.view.node,
        "namespace": lambda r: r.parent.pod.namespace,
        "pod": lambda r: r.parent.pod.name,
        "container": lambda r: "",
        "image": lambda r: "",
        "name": lambda r: r.parent.pod.sandbox_id,
        "id": lambda r: _sandbox_cgroup(r.parent.pod),
        "interface": lambda r: r.item.name,
    },
)


def _container(name: str, kind: Kind, doc: str, value: Any, unit: str = "") -> Family[Any]:
    return Family(f"container_{name}", kind, unit, doc, CONTAINER, value)


def _threads_max(row: ContainerRow) -> float | None:
    """cAdvisor writes 0 for an unlimited pids.max ("infinity if value is zero")."""
    tasks = row.container.tasks
    if tasks.HasField("threads_max"):
        return float(tasks.threads_max)
    return 0.0 if tasks.HasField("threads") else None


def _device_family(name: str, field: str, doc: str, unit: str = "") -> Family[Any]:
    return Family(
        f"container_fs_{name}",
        COUNTER,
        unit,
        doc,
        CONTAINER_DEVICE,
        lambda r: present(r.item, field),
    )


FAMILIES: tuple[Family[Any], ...] = (
    Family(
        "container_cpu_usage_seconds_total",
        COUNTER,
        "seconds",
        "Cumulative cpu time consumed in seconds.",
        CONTAINER,
        lambda r: present(r.container.cpu, "usage_seconds_total"),
        labels={"cpu": lambda r: "total"},
    ),
    _container(
        "cpu_user_seconds_total",
        COUNTER,
        "Cumulative user cpu time consumed in seconds.",
        lambda r: present(r.container.cpu, "user_seconds_total"),
        "seconds",
    ),
    _container(
        "cpu_system_seconds_total",
        COUNTER,
        "Cumulative system cpu time consumed in seconds.",
        lambda r: present(r.container.cpu, "system_seconds_total"),
        "seconds",
    ),
    _container(
        "cpu_cfs_periods_total",
        COUNTER,
        "Number of elapsed enforcement period intervals.",
        lambda r: present(r.container.cpu, "cfs_periods_total"),
    ),
    _container(
        "cpu_cfs_throttled_periods_total",
        COUNTER,
        "Number of throttled period intervals.",
        lambda r: present(r.container.cpu, "cfs_throttled_periods_total"),
    ),
    _container(
        "cpu_cfs_throttled_seconds_total",
        COUNTER,
        "Total time duration the container has been throttled.",
        lambda r: present(r.container.cpu, "cfs_throttled_seconds_total"),
        "seconds",
    ),
    _container(
        "memory_cache",
        GAUGE,
        "Number of bytes of page cache memory.",
        lambda r: present(r.container.memory, "cache_bytes"),
        "bytes",
    ),
    _container(
        "memory_rss",
        GAUGE,
        "Size of RSS in bytes.",
        lambda r: present(r.container.memory, "rss_bytes"),
        "bytes",
    ),
    _container(
        "memory_mapped_file",
        GAUGE,
        "Size of memory mapped files in bytes.",
        lambda r: present(r.container.memory, "mapped_file_bytes"),
        "bytes",
    ),
    _container(
        "memory_swap",
        GAUGE,
        "Container swap usage in bytes.",
        lambda r: present(r.container, "swap_usage_bytes"),
        "bytes",
    ),
    # cAdvisor types this one a counter; served as a gauge so the exposition passes
    # promtool's lint (counters end in _total). PromQL reads it the same either way.
    _container(
        "memory_failcnt",
        GAUGE,
        "Number of memory usage hits limits",
        lambda r: present(r.container.memory, "limit_hits"),
    ),
    _container(
        "memory_events_high_total",
        COUNTER,
        "Cumulative count of memory.high throttle events for the container",
        lambda r: present(r.container.memory, "high_events"),
    ),
    _container(
        "memory_usage_bytes",
        GAUGE,
        "Current memory usage in bytes, including all memory regardless of when it was accessed",
        lambda r: present(r.container.memory, "usage_bytes"),
        "bytes",
    ),
    _container(
        "memory_max_usage_bytes",
        GAUGE,
        "Maximum memory usage recorded in bytes",
        lambda r: present(r.container.memory, "max_usage_bytes"),
        "bytes",
    ),
    _container(
        "memory_working_set_bytes",
        GAUGE,
        "Current working set in bytes.",
        lambda r: present(r.container.memory, "working_set_bytes"),
        "bytes",
    ),
    _container(
        "oom_events_total",
        COUNTER,
        "Count of out of memory events observed for the container",
        lambda r: present(r.container.memory, "oom_kills"),
    ),
    _device_family("reads_bytes_total", "read_bytes", "Cumulative count of bytes read", "bytes"),
    _device_family("reads_total", "reads", "Cumulative count of reads completed"),
    _device_family(
        "writes_bytes_total", "written_bytes", "Cumulative count of bytes written", "bytes"
    ),
    _device_family("writes_total", "writes", "Cumulative count of writes completed"),
    _container(
        "threads",
        GAUGE,
        "Number of threads running inside the container",
        lambda r: present(r.container.tasks, "threads"),
    ),
    _container(
        "threads_max",
        GAUGE,
        "Maximum number of threads allowed inside the container, infinity if value is zero",
        _threads_max,
    ),
    _container(
        "spec_cpu_period",
        GAUGE,
        "CPU period of the container.",
        lambda r: present(r.container.limits, "cpu_period_micros"),
    ),
    _container(
        "spec_cpu_quota",
        GAUGE,
        "CPU quota of the container.",
        lambda r: present(r.container.limits, "cpu_quota_micros"),
    ),
    _container(
        "spec_cpu_shares",
        GAUGE,
        "CPU share of the container.",
        lambda r: present(r.container.limits, "cpu_shares"),
    ),
    _container(
        "spec_memory_limit_bytes",
        GAUGE,
        "Memory limit for the container.",
        lambda r: present(r.container.limits, "memory_bytes"),
        "bytes",
    ),
    _container(
        "start_time_seconds",
        GAUGE,
        "Start time of the container since unix epoch in seconds.",
        lambda r: seconds(r.container.started_at_unix_nanos),
        "seconds",
    ),
    *(
        _container(
            f"pressure_{resource}_{meaning}_seconds_total",
            COUNTER,
            (
                f"Total time duration tasks in the container have waited due to "
                f"{PSI_RESOURCE_NAMES[resource]} congestion."
                if kind == "some"
                else f"Total time duration no tasks in the container could make progress "
                f"due to {PSI_RESOURCE_NAMES[resource]} congestion."
            ),
            psi_total(resource, kind),
            "seconds",
        )
        for resource in ("cpu", "memory", "io")
        for kind, meaning in PSI_MEANINGS
    ),
    *(
        Family(
            f"container_network_{name}_total",
            COUNTER,
            "bytes" if name.endswith("bytes") else "",
            f"Cumulative count of {doc}",
            SANDBOX_INTERFACE,
            item_field(field),
        )
        for name, field, doc in NETWORK
    ),
)

CADVISOR = Profile(
    "cadvisor",
    "cAdvisor's container_* names and labels as the kubelet serves them, for the kubernetes-mixin.",
    FAMILIES,
)
