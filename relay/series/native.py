"""The native profile: kubensage_* families with Prometheus naming and base units.

Counters end in _total, units are base units (_seconds, _bytes), info families end
in _info with the value 1. Workload labels are empty without Kubernetes enrichment.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from kubensage_api.telemetry import telemetry_pb2 as tm
from kubensage_common.checkrules import STATE_NAMES, state_name
from relay.series import nodefigures as figures
from relay.series.labels import pod_label_names
from relay.series.rows import (
    CPU_TIME_FIELDS,
    ContainerRow,
    Item,
    NodeContext,
    PodRow,
    container_resources,
    exposable_checks,
    is_page_count,
    logical_cpu_modes,
    meminfo_fields,
)
from relay.series.spec import Family, Kind, Profile, Subject
from relay.series.values import (
    PSI_MEANINGS,
    item_field,
    nonzero,
    present,
    psi_total,
    seconds,
)

COUNTER, GAUGE = Kind.COUNTER, Kind.GAUGE
CONTAINER_STATE_NAMES = {
    value: name.removeprefix("CONTAINER_STATE_").lower()
    for name, value in tm.ContainerState.items()
}
NODE_MEMORY = (
    ("total", "total_bytes"),
    ("available", "available_bytes"),
    ("free", "free_bytes"),
    ("buffers", "buffers_bytes"),
    ("cached", "cached_bytes"),
    ("swap_total", "swap_total_bytes"),
    ("swap_free", "swap_free_bytes"),
)


def _node_label(context: NodeContext) -> str:
    return context.view.node


NODE: Subject[NodeContext] = Subject(
    "node", "The node.", lambda context: (context,), {"node": _node_label}
)
NODE_CPU_MODE = NODE.part(
    "node CPU mode",
    "Each CPU mode of /proc/stat, summed over CPUs.",
    lambda context: (
        Item(context, entry) for entry in sorted(context.node.cpu_seconds_by_mode.items())
    ),
    {"mode": lambda r: r.item[0]},
)
NODE_LOGICAL_CPU = NODE.part(
    "node logical CPU mode",
    "Each mode of each logical CPU of /proc/stat.",
    logical_cpu_modes(tuple((field, field) for field in CPU_TIME_FIELDS)),
    {"cpu": lambda r: r.cpu, "mode": lambda r: r.mode},
)
NODE_INTERFACE = figures.interfaces_of(NODE)
NODE_FILESYSTEM = figures.filesystems_of(NODE)
NODE_DISK = figures.disks_of(NODE)
NODE_MEMINFO = NODE.part(
    "node meminfo field",
    "Each /proc/meminfo field, by the kernel's name for it (e.g. Active(anon)).",
    meminfo_fields,
    {"field": lambda r: r.item[0]},
)
IMAGE_FILESYSTEM = NODE.part(
    "image filesystem",
    "Each filesystem the runtime keeps images on.",
    lambda context: (Item(context, fs) for fs in context.report.image_filesystems),
    {"mountpoint": lambda r: r.item.mountpoint},
)
AGENT_COLLECTOR = NODE.part(
    "agent collector",
    "Each of the agent's collectors that has failed at least once.",
    lambda context: (
        Item(context, entry)
        for entry in sorted(context.report.health.collector_errors_total.items())
    ),
    {"collector": lambda r: r.item[0]},
)
NODE_CHECK = NODE.part(
    "node check",
    "Each check script's newest result (well named, each name once, at most 64 a node).",
    lambda context: (Item(context, result) for result in exposable_checks(context.view)),
    {"check": lambda r: r.item.name},
)
CHECK_STATE = NODE_CHECK.part(
    "check state",
    "Each state a check can be in (ok, warning, critical, unknown): one series per state.",
    lambda context: (
        Item(check, state) for check in NODE_CHECK.rows(context) for state in STATE_NAMES.values()
    ),
    {"state": lambda r: r.item},
)
CHECK_RESULT = NODE_CHECK.part(
    "check result",
    "Each state a check's runs have ended in since its agent started.",
    lambda context: (
        Item(check, result)
        for check in NODE_CHECK.rows(context)
        for result in STATE_NAMES.values()
        if result in check.item.runs_total
    ),
    {"result": lambda r: r.item},
)
POD: Subject[PodRow] = Subject(
    "pod",
    "The current sandbox of each pod.",
    lambda context: context.pods(),
    {
        "node": lambda r: _node_label(r.context),
        "namespace": lambda r: r.pod.namespace,
        "pod": lambda r: r.pod.name,
        "workload": lambda r: r.workload,
        "workload_kind": lambda r: r.workload_kind,
    },
)
POD_INTERFACE = POD.part(
    "pod interface",
    "Each network interface of a pod with its own network namespace.",
    lambda context: (
        Item(pod, interface) for pod in context.pods() for interface in pod.pod.network
    ),
    {"interface": lambda r: r.item.name},
)
CONTAINER: Subject[ContainerRow] = Subject(
    "container",
    "The current attempt of each container.",
    lambda context: context.containers(),
    {
        "node": lambda r: _node_label(r.pod.context),
        "namespace": lambda r: r.pod.pod.namespace,
        "pod": lambda r: r.pod.pod.name,
        "container": lambda r: r.container.name,
        "workload": lambda r: r.pod.workload,
        "workload_kind": lambda r: r.pod.workload_kind,
    },
)
CONTAINER_RESOURCE = CONTAINER.part(
    "container resource",
    "CPU (unit core) and memory (unit byte) of each container.",
    lambda context: (
        resource for row in context.containers() for resource in container_resources(row)
    ),
    {"resource": lambda r: r.resource, "unit": lambda r: r.unit},
)
CONTAINER_DEVICE = CONTAINER.part(
    "container block device",
    "Each block device a container did I/O on, as the kernel names it.",
    lambda context: (
        Item(row, device) for row in context.containers() for device in row.container.block_io
    ),
    {"device": lambda r: r.item.device},
)


def _container(name: str, kind: Kind, unit: str, doc: str, value: Any) -> Family[ContainerRow]:
    return Family(f"kubensage_container_{name}", kind, unit, doc, CONTAINER, value)


def _node(name: str, kind: Kind, unit: str, doc: str, value: Any) -> Family[NodeContext]:
    return Family(f"kubensage_node_{name}", kind, unit, doc, NODE, value)


def _agent(name: str, kind: Kind, unit: str, doc: str, value: Any) -> Family[NodeContext]:
    return Family(f"kubensage_agent_{name}", kind, unit, doc, NODE, value)


def _native_node(figure: figures.Figure) -> str:
    return f"kubensage_node_{figure.native}"


def _network(
    prefix: str, subject: Subject[Any], counters: tuple[figures.Figure, ...]
) -> Iterable[Family[Any]]:
    return figures.declare(counters, lambda f: f"{prefix}_{f.native}", subject, item_field)


def _pressure(
    scope: str, subject: Subject[Any], resources: tuple[str, ...]
) -> Iterable[Family[Any]]:
    for resource in resources:
        for kind, meaning in PSI_MEANINGS:
            who = "some" if kind == "some" else "all"
            yield Family(
                f"kubensage_{scope}_pressure_{resource}_{meaning}_seconds_total",
                COUNTER,
                "seconds",
                f"PSI {kind}: time {who} tasks of the {scope} were stalled on {resource}.",
                subject,
                psi_total(resource, kind),
            )


def _node_info_labels() -> dict[str, Any]:
    def meta(field: str) -> Any:
        return lambda c: getattr(c.meta, field) if c.meta is not None else ""

    return {
        "kernel_version": lambda c: c.node.kernel_release,
        "os_image": lambda c: c.node.os_image,
        "architecture": lambda c: c.node.architecture,
        "runtime": lambda c: c.report.runtime.name,
        "runtime_version": lambda c: c.report.runtime.version,
        "agent_version": lambda c: c.report.agent_version,
        "kubelet_version": meta("kubelet_version"),
        "region": meta("region"),
        "zone": meta("zone"),
        "instance_type": meta("instance_type"),
        "provider": meta("provider"),
        "cluster": lambda c: c.cluster_name,
    }


def _pod_info_labels() -> dict[str, Any]:
    def fact(get: Any) -> Any:
        return lambda r: get(r.info) if r.info is not None else ""

    return {
        "uid": lambda r: r.pod.uid,
        "qos_class": fact(lambda info: info.qos_class),
        "priority_class": fact(lambda info: info.priority_class),
        "host_network": fact(lambda info: "true" if info.host_network else "false"),
    }


def _pod_labels_value(row: PodRow) -> dict[str, str]:
    info = row.info
    labels = info.labels if info is not None else ()
    names = pod_label_names(key for key, _ in labels)
    return {names[key]: value for key, value in labels}


NODE_FAMILIES: tuple[Family[Any], ...] = (
    Family(
        "kubensage_node_cpu_seconds_total",
        COUNTER,
        "seconds",
        "CPU time per mode, summed over CPUs.",
        NODE_CPU_MODE,
        lambda r: r.item[1],
    ),
    _node("cpus", GAUGE, "", "Logical CPUs.", lambda c: nonzero(c.node.cpu_count)),
    *(
        _node(
            f"memory_{name}_bytes",
            GAUGE,
            "bytes",
            f"Memory {name.replace('_', ' ')} (/proc/meminfo).",
            lambda c, field=field: present(c.node.memory, field),
        )
        for name, field in NODE_MEMORY
    ),
    *figures.declare(figures.LOAD, _native_node, NODE, figures.load_average),
    *figures.declare(figures.STAT, _native_node, NODE, figures.node_field()),
    *_pressure("node", NODE, ("cpu", "memory", "io", "irq")),
    *_network("kubensage_node_network", NODE_INTERFACE, figures.NETWORK_BASIC),
    *_network("kubensage_node_network", NODE_INTERFACE, figures.NETWORK_DETAIL),
    *figures.declare(figures.TIME_AND_IDENTITY, _native_node, NODE, figures.node_field()),
    Family(
        "kubensage_node_logical_cpu_seconds_total",
        COUNTER,
        "seconds",
        "CPU time of each logical CPU per mode (guest time is also counted in user).",
        NODE_LOGICAL_CPU,
        lambda r: r.seconds,
    ),
    *figures.declare(figures.FILESYSTEM, _native_node, NODE_FILESYSTEM, item_field),
    Family(
        "kubensage_node_filesystem_read_only",
        GAUGE,
        "",
        "1 when the filesystem is mounted read-only, else 0.",
        NODE_FILESYSTEM,
        lambda r: float(r.item.read_only),
    ),
    Family(
        "kubensage_node_filesystem_device_error",
        GAUGE,
        "",
        "1 when statfs failed or did not answer in time (the sizes are then absent), else 0.",
        NODE_FILESYSTEM,
        lambda r: float(r.item.device_error),
    ),
    *figures.declare(figures.DISK, _native_node, NODE_DISK, item_field),
    Family(
        "kubensage_node_meminfo_bytes",
        GAUGE,
        "bytes",
        "A /proc/meminfo field the kernel gives in kB, in bytes.",
        NODE_MEMINFO,
        lambda r: None if is_page_count(r.item[0]) else float(r.item[1]),
    ),
    Family(
        "kubensage_node_meminfo_pages",
        GAUGE,
        "",
        "A /proc/meminfo field the kernel gives as a count of huge pages (HugePages_*).",
        NODE_MEMINFO,
        lambda r: float(r.item[1]) if is_page_count(r.item[0]) else None,
    ),
    *figures.declare(figures.VMSTAT, _native_node, NODE, figures.node_field("vmstat")),
    *figures.declare(
        figures.FILE_DESCRIPTORS, _native_node, NODE, figures.node_field("file_descriptors")
    ),
    *figures.declare(figures.CONNTRACK, _native_node, NODE, figures.node_field("conntrack")),
    *figures.declare(figures.CLOCK, _native_node, NODE, figures.node_field("clock")),
    Family(
        "kubensage_node_image_filesystem_usage_bytes",
        GAUGE,
        "bytes",
        "Bytes the runtime uses for images.",
        IMAGE_FILESYSTEM,
        lambda r: present(r.item, "used_bytes"),
    ),
    Family(
        "kubensage_node_info",
        GAUGE,
        "",
        "Node identity; always 1.",
        NODE,
        lambda c: 1.0,
        labels=_node_info_labels(),
    ),
)

POD_FAMILIES: tuple[Family[Any], ...] = (
    *_network("kubensage_pod_network", POD_INTERFACE, figures.NETWORK_BASIC),
    Family(
        "kubensage_pod_info",
        GAUGE,
        "",
        "Pod identity and scheduling facts; always 1.",
        POD,
        lambda r: 1.0,
        labels=_pod_info_labels(),
    ),
    Family(
        "kubensage_pod_labels",
        GAUGE,
        "",
        "Pod labels on the allowlist (--pod-labels), as label_<name>; always 1.",
        POD,
        lambda r: 1.0 if r.info is not None and r.info.labels else None,
        dynamic_labels=_pod_labels_value,
        dynamic_labels_doc="label_<key> for each key on --pod-labels",
    ),
)

CONTAINER_FAMILIES: tuple[Family[Any], ...] = (
    Family(
        "kubensage_container_resource_requests",
        GAUGE,
        "",
        "Resources the container requests in its pod spec (cores, bytes).",
        CONTAINER_RESOURCE,
        lambda r: r.request,
    ),
    Family(
        "kubensage_container_resource_limits",
        GAUGE,
        "",
        "Resource limits of the container in its pod spec (cores, bytes).",
        CONTAINER_RESOURCE,
        lambda r: r.limit,
    ),
    _container(
        "cpu_usage_seconds_total",
        COUNTER,
        "seconds",
        "CPU time consumed, summed over all cores.",
        lambda r: present(r.container.cpu, "usage_seconds_total"),
    ),
    _container(
        "cpu_user_seconds_total",
        COUNTER,
        "seconds",
        "CPU time consumed in user mode.",
        lambda r: present(r.container.cpu, "user_seconds_total"),
    ),
    _container(
        "cpu_system_seconds_total",
        COUNTER,
        "seconds",
        "CPU time consumed in kernel mode.",
        lambda r: present(r.container.cpu, "system_seconds_total"),
    ),
    _container(
        "cpu_cfs_periods_total",
        COUNTER,
        "",
        "CFS enforcement periods that elapsed while the container had runnable tasks.",
        lambda r: present(r.container.cpu, "cfs_periods_total"),
    ),
    _container(
        "cpu_cfs_throttled_periods_total",
        COUNTER,
        "",
        "CFS periods in which the container was throttled by its CPU limit.",
        lambda r: present(r.container.cpu, "cfs_throttled_periods_total"),
    ),
    _container(
        "cpu_cfs_throttled_seconds_total",
        COUNTER,
        "seconds",
        "Time the container's tasks were throttled by its CPU limit.",
        lambda r: present(r.container.cpu, "cfs_throttled_seconds_total"),
    ),
    _container(
        "memory_working_set_bytes",
        GAUGE,
        "bytes",
        "Working set: usage minus inactive file cache (what the kubelet evicts on).",
        lambda r: present(r.container.memory, "working_set_bytes"),
    ),
    _container(
        "memory_usage_bytes",
        GAUGE,
        "bytes",
        "All memory in use, including cache.",
        lambda r: present(r.container.memory, "usage_bytes"),
    ),
    _container(
        "memory_rss_bytes",
        GAUGE,
        "bytes",
        "Anonymous and swap cache memory.",
        lambda r: present(r.container.memory, "rss_bytes"),
    ),
    _container(
        "memory_cache_bytes",
        GAUGE,
        "bytes",
        "Page cache charged to the container.",
        lambda r: present(r.container.memory, "cache_bytes"),
    ),
    _container(
        "memory_mapped_file_bytes",
        GAUGE,
        "bytes",
        "Memory-mapped files, shared libraries included.",
        lambda r: present(r.container.memory, "mapped_file_bytes"),
    ),
    _container(
        "memory_max_usage_bytes",
        GAUGE,
        "bytes",
        "Highest memory usage the kernel recorded for the container.",
        lambda r: present(r.container.memory, "max_usage_bytes"),
    ),
    _container(
        "memory_limit_hits_total",
        COUNTER,
        "",
        "Times memory usage hit the limit (v1 failcnt, v2 memory.events max).",
        lambda r: present(r.container.memory, "limit_hits"),
    ),
    _container(
        "memory_high_events_total",
        COUNTER,
        "",
        "Times usage went over memory.high and was throttled (cgroup v2).",
        lambda r: present(r.container.memory, "high_events"),
    ),
    _container(
        "oom_kills_total",
        COUNTER,
        "",
        "Processes the OOM killer ended in the container, earlier attempts of the same "
        "container in the pod included.",
        lambda r: present(r.container.memory, "oom_kills"),
    ),
    _container(
        "memory_page_faults_total",
        COUNTER,
        "",
        "Minor page faults.",
        lambda r: present(r.container.memory, "page_faults"),
    ),
    _container(
        "memory_major_page_faults_total",
        COUNTER,
        "",
        "Major page faults.",
        lambda r: present(r.container.memory, "major_page_faults"),
    ),
    _container(
        "swap_usage_bytes",
        GAUGE,
        "bytes",
        "Swap used by the container.",
        lambda r: present(r.container, "swap_usage_bytes"),
    ),
    Family(
        "kubensage_container_block_reads_total",
        COUNTER,
        "",
        "Reads completed on the device.",
        CONTAINER_DEVICE,
        lambda r: present(r.item, "reads"),
    ),
    Family(
        "kubensage_container_block_writes_total",
        COUNTER,
        "",
        "Writes completed on the device.",
        CONTAINER_DEVICE,
        lambda r: present(r.item, "writes"),
    ),
    Family(
        "kubensage_container_block_read_bytes_total",
        COUNTER,
        "bytes",
        "Bytes read from the device.",
        CONTAINER_DEVICE,
        lambda r: present(r.item, "read_bytes"),
    ),
    Family(
        "kubensage_container_block_written_bytes_total",
        COUNTER,
        "bytes",
        "Bytes written to the device.",
        CONTAINER_DEVICE,
        lambda r: present(r.item, "written_bytes"),
    ),
    _container(
        "threads",
        GAUGE,
        "",
        "Tasks (threads) in the container's cgroup.",
        lambda r: present(r.container.tasks, "threads"),
    ),
    _container(
        "threads_max",
        GAUGE,
        "",
        "Limit on tasks in the container's cgroup; absent when unlimited.",
        lambda r: present(r.container.tasks, "threads_max"),
    ),
    _container(
        "fs_usage_bytes",
        GAUGE,
        "bytes",
        "Bytes used by the container's writable layer.",
        lambda r: present(r.container.writable_layer, "used_bytes"),
    ),
    _container(
        "fs_inodes_used",
        GAUGE,
        "",
        "Inodes used by the container's writable layer.",
        lambda r: present(r.container.writable_layer, "inodes_used"),
    ),
    _container(
        "start_time_seconds",
        GAUGE,
        "seconds",
        "Unix time the container started.",
        lambda r: seconds(r.container.started_at_unix_nanos),
    ),
    *_pressure("container", CONTAINER, ("cpu", "memory", "io")),
    Family(
        "kubensage_container_info",
        GAUGE,
        "",
        "Container identity; always 1.",
        CONTAINER,
        lambda r: 1.0,
        labels={
            "image": lambda r: r.container.image,
            "image_id": lambda r: r.container.image_ref,
            "container_id": lambda r: r.container.id,
            "runtime": lambda r: r.pod.context.report.runtime.name,
        },
    ),
    Family(
        "kubensage_container_state",
        GAUGE,
        "",
        "Current container state as a label; always 1.",
        CONTAINER,
        lambda r: 1.0,
        labels={"state": lambda r: CONTAINER_STATE_NAMES.get(r.container.state, "unknown")},
    ),
    _container(
        "restarts",
        GAUGE,
        "",
        "Restart attempt number the runtime gives the container.",
        lambda r: float(r.container.attempt),
    ),
)

AGENT_FAMILIES: tuple[Family[Any], ...] = (
    _agent(
        "cycle_duration_seconds",
        GAUGE,
        "seconds",
        "Duration of the agent's last collection.",
        lambda c: c.report.health.cycle_duration_seconds,
    ),
    _agent(
        "queue_depth",
        GAUGE,
        "",
        "Reports waiting for an acknowledgement.",
        lambda c: float(c.report.health.queue_depth),
    ),
    _agent(
        "interval_seconds",
        GAUGE,
        "seconds",
        "Collection interval in force.",
        lambda c: nonzero(c.report.health.interval_seconds),
    ),
    _agent(
        "start_time_seconds",
        GAUGE,
        "seconds",
        "Unix time the agent started.",
        lambda c: seconds(c.report.health.started_at_unix_nanos),
    ),
    _agent(
        "dropped_reports_total",
        COUNTER,
        "",
        "Reports dropped because the queue or spool was full.",
        lambda c: float(c.report.health.dropped_reports_total),
    ),
    _agent(
        "reconnects_total",
        COUNTER,
        "",
        "Times the agent reconnected to a relay.",
        lambda c: float(c.report.health.reconnects_total),
    ),
    _agent(
        "cri_errors_total",
        COUNTER,
        "",
        "Failed CRI calls.",
        lambda c: float(c.report.health.cri_errors_total),
    ),
    _agent(
        "check_errors_total",
        COUNTER,
        "",
        "Check runs refused (ownership, mode, manifest) or that could not start.",
        lambda c: float(c.report.health.check_errors_total),
    ),
    _agent(
        "spooled_bytes",
        GAUGE,
        "bytes",
        "Bytes of unacknowledged reports held in the agent's disk spool.",
        lambda c: float(c.report.health.spooled_bytes),
    ),
    _agent(
        "spool_corrupt_records_total",
        COUNTER,
        "",
        "Spooled reports found damaged and skipped since the agent started.",
        lambda c: float(c.report.health.spool_corrupt_records_total),
    ),
    _agent(
        "process_cpu_seconds_total",
        COUNTER,
        "seconds",
        "CPU time the agent process has used (all threads).",
        lambda c: present(c.report.health, "process_cpu_seconds_total"),
    ),
    _agent(
        "process_resident_memory_bytes",
        GAUGE,
        "bytes",
        "Resident memory of the agent process.",
        lambda c: present(c.report.health, "process_resident_memory_bytes"),
    ),
    Family(
        "kubensage_agent_collector_errors_total",
        COUNTER,
        "",
        "Failures per collector.",
        AGENT_COLLECTOR,
        lambda r: float(r.item[1]),
    ),
    Family(
        "kubensage_relay_last_report_timestamp_seconds",
        GAUGE,
        "seconds",
        "Unix time the node's last report arrived.",
        NODE,
        lambda c: c.view.received_at_unix,
    ),
    Family(
        "kubensage_relay_node_connected",
        GAUGE,
        "",
        "1 while the node's agent holds a stream open.",
        NODE,
        lambda c: 1.0 if c.view.connected else 0.0,
    ),
    Family(
        "kubensage_relay_node_last_sequence",
        GAUGE,
        "",
        "Sequence number of the node's newest accepted report; a jump means lost reports.",
        NODE,
        lambda c: float(c.report.sequence),
    ),
)

CHECK_FAMILIES: tuple[Family[Any], ...] = (
    Family(
        "kubensage_check_duration_seconds",
        GAUGE,
        "seconds",
        "Wall time of the check's newest run.",
        NODE_CHECK,
        lambda r: r.item.duration_seconds,
    ),
    Family(
        "kubensage_check_last_run_timestamp_seconds",
        GAUGE,
        "seconds",
        "Unix time the check's newest run started.",
        NODE_CHECK,
        lambda r: seconds(r.item.ran_at_unix_nanos),
    ),
    Family(
        "kubensage_check_status",
        GAUGE,
        "",
        "1 for the check's current state, 0 for the other states (Nagios exit codes: "
        "0 ok, 1 warning, 2 critical, else unknown).",
        CHECK_STATE,
        lambda r: 1.0 if state_name(r.parent.item.state) == r.item else 0.0,
    ),
    Family(
        "kubensage_check_runs_total",
        COUNTER,
        "",
        "Runs of the check since its agent started, by the state they ended in.",
        CHECK_RESULT,
        lambda r: float(r.parent.item.runs_total[r.item]),
    ),
)

NATIVE = Profile(
    "native",
    "kubensage_* names with Prometheus conventions: every figure the agent has.",
    (*NODE_FAMILIES, *POD_FAMILIES, *CONTAINER_FAMILIES, *AGENT_FAMILIES, *CHECK_FAMILIES),
)
