"""The rows one node's report is measured in: the node, its pods, containers and their parts.

Rows carry what every profile's label getters and extractors need (Kubernetes
metadata looked up once per pod per render) so declarations stay one-liners.

When the runtime still lists old attempts (the kubelet keeps the last dead
container of each name and old sandboxes until they are collected), the newest
attempt is the row: after a restart the new container's counter is the series
and the old one is gone.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from google.protobuf.message import Message

from kubensage_api.telemetry import telemetry_pb2 as tm
from kubensage_common.checkrules import is_check_name
from kubensage_common.logsetup import OnceLogger
from relay.enrich.kube import Enrichment
from relay.enrich.objects import ContainerResources, NodeInfo, PodInfo
from relay.state.store import NodeView

MAX_CHECKS_PER_NODE = 64
P = TypeVar("P")
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Item(Generic[P, T]):
    """A part of a row (an interface of a pod, a device of a container, a CPU mode...)."""

    parent: P
    item: T


@dataclass(frozen=True, slots=True)
class CpuMode:
    """One mode of one logical CPU, under the mode label a profile gives it."""

    parent: NodeContext
    cpu: str
    mode: str
    seconds: float


# every mode /proc/stat counts per CPU, in the protocol's order (user, nice, ... guest_nice)
CPU_TIME_FIELDS = tuple(f.name for f in tm.CpuTimes.DESCRIPTOR.fields if f.name != "cpu")
# /proc/meminfo field names as kernels spell them ("MemTotal", "Active(anon)"): anything
# else in a report is skipped, since profiles make label values and metric names of them
KERNEL_MEMINFO_FIELD = re.compile(r"[A-Za-z][A-Za-z0-9_]{0,63}(\([A-Za-z0-9_]{1,32}\))?")
# the summary an agent without the meminfo map still sends, by kernel field name
MEMINFO_SUMMARY = (
    ("MemTotal", "total_bytes"),
    ("MemFree", "free_bytes"),
    ("MemAvailable", "available_bytes"),
    ("Buffers", "buffers_bytes"),
    ("Cached", "cached_bytes"),
    ("SwapTotal", "swap_total_bytes"),
    ("SwapFree", "swap_free_bytes"),
)
# the /proc/meminfo fields the kernel prints as page counts, not kB
MEMINFO_PAGE_COUNT_PREFIX = "HugePages_"


def _pressure_by_resource(entries: Iterable[tm.Pressure]) -> dict[str, tm.Pressure]:
    return {entry.resource: entry for entry in entries}


class NodeContext:
    """One node's report with its Kubernetes metadata, for one render."""

    __slots__ = (
        "_containers",
        "_pods",
        "_psi",
        "cluster_name",
        "enrichment",
        "meta",
        "node",
        "report",
        "view",
    )

    def __init__(self, view: NodeView, enrichment: Enrichment) -> None:
        self.view = view
        self.report = view.report
        self.node = view.report.node
        self.enrichment = enrichment
        self.meta: NodeInfo | None = enrichment.node(view.node)
        self.cluster_name = enrichment.cluster_name
        self._psi: dict[str, tm.Pressure] | None = None
        self._pods: list[PodRow] | None = None
        self._containers: list[ContainerRow] | None = None

    def pressure(self, resource: str) -> tm.Pressure | None:
        if self._psi is None:
            self._psi = _pressure_by_resource(self.node.pressure)
        return self._psi.get(resource)

    def pods(self) -> list[PodRow]:
        """The current attempt of each pod, with its metadata looked up once."""
        if self._pods is None:
            self._pods = [PodRow(self, pod) for pod in current_pods(self.report.pods)]
        return self._pods

    def containers(self) -> list[ContainerRow]:
        """The current attempt of each container; its pod row is the sandbox it runs in.
        Chosen once per render: several subjects (a container, its resources, its devices)
        walk the same rows."""
        if self._containers is None:
            pod_rows = {row.pod.sandbox_id: row for row in self.pods()}
            rows = []
            for pod, container in current_containers(self.report.pods):
                owner = pod_rows.get(pod.sandbox_id)
                if owner is None:  # a container of an older sandbox of the pod
                    owner = pod_rows[pod.sandbox_id] = PodRow(self, pod)
                rows.append(ContainerRow(owner, container))
            self._containers = rows
        return self._containers


class PodRow:
    __slots__ = ("context", "info", "pod", "workload", "workload_kind")

    def __init__(self, context: NodeContext, pod: tm.Pod) -> None:
        self.context = context
        self.pod = pod
        self.info: PodInfo | None = context.enrichment.pod(pod.uid)
        self.workload_kind, self.workload = context.enrichment.workload(self.info)


class ContainerRow:
    __slots__ = ("_psi", "container", "pod")

    def __init__(self, pod: PodRow, container: tm.Container) -> None:
        self.pod = pod
        self.container = container
        self._psi: dict[str, tm.Pressure] | None = None

    def pressure(self, resource: str) -> tm.Pressure | None:
        if self._psi is None:
            self._psi = _pressure_by_resource(self.container.pressure)
        return self._psi.get(resource)

    def spec(self) -> ContainerResources | None:
        """The container's requests and limits from the Kubernetes API, when enriched."""
        info = self.pod.info
        if info is None:
            return None
        name = self.container.name
        return next((c for c in info.containers if c.name == name), None)


@dataclass(frozen=True, slots=True)
class ResourceRow:
    """One resource (cpu, memory) of a container with its Kubernetes request and limit."""

    parent: ContainerRow
    resource: str
    unit: str
    request: float | None
    limit: float | None


def container_resources(row: ContainerRow) -> tuple[ResourceRow, ...]:
    """The container's resources from its pod spec; none without Kubernetes metadata,
    where every figure of theirs would be absent."""
    spec = row.spec()
    if spec is None:
        return ()
    return (
        ResourceRow(row, "cpu", "core", spec.cpu_request, spec.cpu_limit),
        ResourceRow(row, "memory", "byte", spec.memory_request, spec.memory_limit),
    )


def _pod_rank(pod: tm.Pod) -> tuple[bool, int, int]:
    return (pod.state == tm.POD_STATE_READY, pod.attempt, pod.created_at_unix_nanos)


def _container_rank(container: tm.Container) -> tuple[bool, int, int]:
    running = container.state == tm.CONTAINER_STATE_RUNNING
    return (running, container.attempt, container.created_at_unix_nanos)


def current_pods(pods: Iterable[tm.Pod]) -> list[tm.Pod]:
    chosen: dict[tuple[str, str], tm.Pod] = {}
    for pod in pods:
        key = (pod.namespace, pod.name)
        if key not in chosen or _pod_rank(pod) > _pod_rank(chosen[key]):
            chosen[key] = pod
    return list(chosen.values())


def current_containers(pods: Iterable[tm.Pod]) -> list[tuple[tm.Pod, tm.Container]]:
    """(pod, container) pairs, one per namespace/pod/container name, across all sandboxes."""
    chosen: dict[tuple[str, str, str], tuple[tm.Pod, tm.Container]] = {}
    for pod in pods:
        for container in pod.containers:
            key = (pod.namespace, pod.name, container.name)
            held = chosen.get(key)
            if held is None or _container_rank(container) > _container_rank(held[1]):
                chosen[key] = (pod, container)
    return list(chosen.values())


_checks_log = OnceLogger(logging.getLogger(__name__))


def exposable_checks(view: NodeView) -> Iterator[tm.CheckResult]:
    """The node's check results that may become series: named by the agents' rule (the name
    is a label value), each name once (a repeat would duplicate series), at most
    MAX_CHECKS_PER_NODE; what is skipped is logged once per node."""
    seen: set[str] = set()
    for result in view.report.checks:
        if len(seen) >= MAX_CHECKS_PER_NODE:
            _checks_log.problem(f"checks:{view.node}:cap", f"node {view.node}: checks over the cap")
            return
        if not is_check_name(result.name) or result.name in seen:
            _checks_log.problem(
                f"checks:{view.node}:name",
                f"node {view.node}: check result {result.name[:64]!r} skipped "
                "(invalid or repeated name)",
            )
            continue
        seen.add(result.name)
        yield result


def node_parts(field: str) -> Callable[[NodeContext], Iterator[Item[NodeContext, Any]]]:
    """Rows of one repeated part of the node: its filesystems, disks or interfaces."""
    return lambda context: (Item(context, part) for part in getattr(context.node, field))


def logical_cpu_modes(
    modes: Sequence[tuple[str, str]],
) -> Callable[[NodeContext], Iterator[CpuMode]]:
    """Rows of each logical CPU's seconds for the (CpuTimes field, mode label) pairs given."""

    def rows(context: NodeContext) -> Iterator[CpuMode]:
        for cpu in context.node.cpus:
            for field, mode in modes:
                yield CpuMode(context, cpu.cpu, mode, getattr(cpu, field))

    return rows


def meminfo_fields(context: NodeContext) -> Iterator[Item[NodeContext, tuple[str, int]]]:
    """Every /proc/meminfo field the node reported, by kernel name; from the memory
    summary when the agent predates the full map."""
    node = context.node
    if node.meminfo:
        fields: Iterable[tuple[str, int]] = sorted(node.meminfo.items())
    else:
        memory: Message = node.memory
        fields = [
            (name, getattr(memory, field))
            for name, field in MEMINFO_SUMMARY
            if memory.HasField(field)
        ]
    for name, value in fields:
        if KERNEL_MEMINFO_FIELD.fullmatch(name):
            yield Item(context, (name, value))


def is_page_count(field: str) -> bool:
    return field.startswith(MEMINFO_PAGE_COUNT_PREFIX)
