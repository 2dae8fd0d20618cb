"""Pods and containers from the runtime over CRI, with their stats, network and PSI.

Each cycle: ListPodSandbox, ListContainers, ListContainerStats, ListPodSandboxStats
and ImageFsInfo; ContainerStatus/PodSandboxStatus only for what is new or changed
(their answers are cached per id). Every call shares one cycle deadline; a failed
call costs only the fields it would have given.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from typing import Any, Literal, get_args

import grpc

from kubensage_agent.collectors.errors import CollectorErrors
from kubensage_agent.collectors.fill import fill_interface, fill_pressure, read_pressure_file
from kubensage_agent.cri.client import CriClient, CriError
from kubensage_agent.hostfs import HostPaths, read_small
from kubensage_agent.parsers.cgroup import find_cgroup2_mount, parse_unified_path
from kubensage_agent.parsers.netdev import parse_net_dev
from kubensage_agent.parsers.pressure import PressureLine, PressureStats
from kubensage_agent.rates import CpuRateTracker, cores_from_nano_cores
from kubensage_api.cri import api_pb2
from kubensage_api.telemetry import telemetry_pb2 as tm

NANOS = 1_000_000_000
MAX_ANNOTATION_VALUE = 4096
CONTAINER_STATES = {
    api_pb2.CONTAINER_CREATED: tm.CONTAINER_STATE_CREATED,
    api_pb2.CONTAINER_RUNNING: tm.CONTAINER_STATE_RUNNING,
    api_pb2.CONTAINER_EXITED: tm.CONTAINER_STATE_EXITED,
    api_pb2.CONTAINER_UNKNOWN: tm.CONTAINER_STATE_UNKNOWN,
}
POD_STATES = {
    api_pb2.SANDBOX_READY: tm.POD_STATE_READY,
    api_pb2.SANDBOX_NOTREADY: tm.POD_STATE_NOT_READY,
}
PSI_FILES = (("cpu", "cpu.pressure"), ("memory", "memory.pressure"), ("io", "io.pressure"))


@dataclass
class _ContainerDetail:
    """What ContainerStatus told us; valid while the container stays in `state`."""

    state: int
    status: api_pb2.ContainerStatus
    pid: int | None
    # the container's cgroup v2 *.pressure files under the host root, looked up once
    pressure_files: tuple[tuple[str, str], ...] = ()
    cgroup_known: bool = False
    # the parts of the Container message fixed while the container stays in `state`
    identity: tm.Container | None = None


@dataclass
class _SandboxDetail:
    ips: list[str]
    pid: int | None
    # the sandbox shares the host's network namespace (hostNetwork: true)
    host_network: bool = False
    # the parts of the Pod message that never change for a sandbox, built once
    identity: tm.Pod | None = None


def _info_pid(info: dict[str, str]) -> int | None:
    """The process id from a verbose status answer (containerd and CRI-O put it in info["info"])."""
    raw = info.get("info")
    if not raw:
        return None
    try:
        pid = json.loads(raw).get("pid")
    except (ValueError, AttributeError):
        return None
    return pid if isinstance(pid, int) and pid > 0 else None


def _psi_from_cri(psi: api_pb2.PsiStats) -> PressureStats:
    def line(data: api_pb2.PsiData) -> PressureLine:
        return PressureLine(data.avg10, data.avg60, data.avg300, data.total / NANOS)

    return PressureStats(
        some=line(psi.some) if psi.HasField("some") else None,
        full=line(psi.full) if psi.HasField("full") else None,
    )


def _fill_filesystem(target: tm.FilesystemUsage, usage: api_pb2.FilesystemUsage) -> None:
    target.mountpoint = usage.fs_id.mountpoint
    if usage.HasField("used_bytes"):
        target.used_bytes = usage.used_bytes.value
    if usage.HasField("inodes_used"):
        target.inodes_used = usage.inodes_used.value


MemoryField = Literal[
    "working_set_bytes",
    "usage_bytes",
    "rss_bytes",
    "available_bytes",
    "page_faults",
    "major_page_faults",
]
MEMORY_FIELDS: tuple[MemoryField, ...] = get_args(MemoryField)
NetworkField = Literal["rx_bytes", "rx_errors", "tx_bytes", "tx_errors"]
CRI_NETWORK_FIELDS: tuple[tuple[NetworkField, str], ...] = (
    ("rx_bytes", "receive_bytes"),
    ("rx_errors", "receive_errors"),
    ("tx_bytes", "transmit_bytes"),
    ("tx_errors", "transmit_errors"),
)


def _fill_memory(target: tm.ContainerMemory, memory: api_pb2.MemoryUsage) -> None:
    for field in MEMORY_FIELDS:
        if memory.HasField(field):
            setattr(target, field, getattr(memory, field).value)


def _fill_limits(target: tm.Container, status: api_pb2.ContainerStatus) -> None:
    linux = status.resources.linux
    if linux.cpu_quota > 0 and linux.cpu_period > 0:
        target.limits.cpu_cores = linux.cpu_quota / linux.cpu_period
    if linux.memory_limit_in_bytes > 0:
        target.limits.memory_bytes = linux.memory_limit_in_bytes


def _cap(values: dict[str, str]) -> dict[str, str]:
    return {k: v[:MAX_ANNOTATION_VALUE] for k, v in values.items()}


def _container_identity(
    container: api_pb2.Container, status: api_pb2.ContainerStatus | None
) -> tm.Container:
    out = tm.Container(
        id=container.id,
        name=container.metadata.name,
        attempt=container.metadata.attempt,
        image=container.image.image,
        image_ref=container.image_ref,
        state=CONTAINER_STATES.get(container.state, tm.CONTAINER_STATE_UNKNOWN),
        created_at_unix_nanos=container.created_at,
        labels=dict(container.labels),
    )
    if status is not None:
        out.started_at_unix_nanos = status.started_at
        out.finished_at_unix_nanos = status.finished_at
        out.exit_code = status.exit_code
        out.reason = status.reason
        if status.image.image and not out.image:
            out.image = status.image.image
        _fill_limits(out, status)
    return out


def _pod_identity(sandbox: api_pb2.PodSandbox, ips: list[str]) -> tm.Pod:
    meta = sandbox.metadata
    return tm.Pod(
        sandbox_id=sandbox.id,
        name=meta.name,
        namespace=meta.namespace,
        uid=meta.uid,
        attempt=meta.attempt,
        created_at_unix_nanos=sandbox.created_at,
        labels=dict(sandbox.labels),
        annotations=_cap(dict(sandbox.annotations)),
        runtime_handler=sandbox.runtime_handler,
        ips=ips,
    )


class CriCollector:
    def __init__(self, client: CriClient, paths: HostPaths, errors: CollectorErrors) -> None:
        self.client = client
        self.paths = paths
        self.errors = errors
        self.rates = CpuRateTracker()
        self.cri_errors_total = 0
        self._containers: dict[str, _ContainerDetail] = {}
        self._sandboxes: dict[str, _SandboxDetail] = {}
        self._pod_stats_implemented = True
        self._cgroup2_mount: str | None = None
        self._cgroup2_checked = False
        self._node_netns: frozenset[int] | None = None

    def _call(self, method: str, request: object, deadline: float) -> Any:
        """One CRI call; on failure count it, log the cause once, and return None."""
        try:
            response = self.client.call(method, request, deadline)
        except CriError as exc:
            self.cri_errors_total += 1
            self.errors.once.problem(f"cri:{method}", f"CRI {exc}")
            return None
        self.errors.once.clear(f"cri:{method}")
        return response

    def collect(self, deadline: float) -> tuple[list[tm.Pod], list[tm.FilesystemUsage]]:
        """Pods with their containers, and the image filesystems; empty when the runtime is down."""
        sandboxes = self._call("ListPodSandbox", api_pb2.ListPodSandboxRequest(), deadline)
        if not isinstance(sandboxes, api_pb2.ListPodSandboxResponse):
            return [], []
        listed = self._call("ListContainers", api_pb2.ListContainersRequest(), deadline)
        containers = (
            list(listed.containers) if isinstance(listed, api_pb2.ListContainersResponse) else []
        )
        stats_answer = self._call(
            "ListContainerStats", api_pb2.ListContainerStatsRequest(), deadline
        )
        stats = {
            s.attributes.id: s
            for s in (
                stats_answer.stats
                if isinstance(stats_answer, api_pb2.ListContainerStatsResponse)
                else []
            )
        }
        pod_stats = self._pod_sandbox_stats(deadline)
        image_fs = self._image_filesystems(deadline)

        pods: dict[str, tm.Pod] = {}
        for sandbox in sandboxes.items:
            pods[sandbox.id] = self._pod(sandbox, pod_stats.get(sandbox.id), deadline)
        for container in containers:
            pod = pods.get(container.pod_sandbox_id)
            if pod is None:
                continue  # created between our two list calls; it appears next cycle
            self._container(pod.containers.add(), container, stats.get(container.id), deadline)

        self.rates.retain(c.id for c in containers)
        live = {c.id for c in containers}
        self._containers = {k: v for k, v in self._containers.items() if k in live}
        self._sandboxes = {k: v for k, v in self._sandboxes.items() if k in pods}
        return list(pods.values()), image_fs

    def _pod_sandbox_stats(self, deadline: float) -> dict[str, api_pb2.PodSandboxStats]:
        if not self._pod_stats_implemented:
            return {}
        try:
            answer = self.client.call(
                "ListPodSandboxStats", api_pb2.ListPodSandboxStatsRequest(), deadline
            )
        except CriError as exc:
            if exc.code == grpc.StatusCode.UNIMPLEMENTED:
                self._pod_stats_implemented = False
                self.errors.once.problem(
                    "cri:ListPodSandboxStats",
                    "runtime does not implement ListPodSandboxStats; pod network comes from "
                    "/proc/<pid>/net/dev instead",
                )
            else:
                self.cri_errors_total += 1
                self.errors.once.problem(
                    "cri:ListPodSandboxStats",
                    f"CRI {exc}; pod network falls back to /proc/<pid>/net/dev",
                )
            return {}
        self.errors.once.clear("cri:ListPodSandboxStats")
        return {s.attributes.id: s for s in answer.stats}

    def _image_filesystems(self, deadline: float) -> list[tm.FilesystemUsage]:
        answer = self._call("ImageFsInfo", api_pb2.ImageFsInfoRequest(), deadline)
        if not isinstance(answer, api_pb2.ImageFsInfoResponse):
            return []
        result = []
        for usage in answer.image_filesystems:
            out = tm.FilesystemUsage()
            _fill_filesystem(out, usage)
            result.append(out)
        return result

    def _sandbox_detail(self, sandbox_id: str, deadline: float) -> _SandboxDetail | None:
        detail = self._sandboxes.get(sandbox_id)
        if detail is not None:
            return detail
        answer = self._call(
            "PodSandboxStatus",
            api_pb2.PodSandboxStatusRequest(pod_sandbox_id=sandbox_id, verbose=True),
            deadline,
        )
        if not isinstance(answer, api_pb2.PodSandboxStatusResponse):
            return None
        network = answer.status.network
        ips = [ip for ip in [network.ip, *(a.ip for a in network.additional_ips)] if ip]
        pid = _info_pid(dict(answer.info))
        detail = _SandboxDetail(ips=ips, pid=pid, host_network=self._in_host_netns(pid))
        self._sandboxes[sandbox_id] = detail
        return detail

    def _pod(
        self, sandbox: api_pb2.PodSandbox, stats: api_pb2.PodSandboxStats | None, deadline: float
    ) -> tm.Pod:
        detail = self._sandbox_detail(sandbox.id, deadline)
        pod = tm.Pod()
        if detail is not None:
            if detail.identity is None:
                detail.identity = _pod_identity(sandbox, detail.ips)
            pod.CopyFrom(detail.identity)
        else:
            pod.CopyFrom(_pod_identity(sandbox, []))
        pod.state = POD_STATES.get(sandbox.state, tm.POD_STATE_UNSPECIFIED)
        if stats is not None and stats.linux.HasField("network"):
            self._pod_network_from_cri(pod, stats.linux.network)
        elif detail is not None and detail.host_network:
            pod.network_source = "host"  # the node's own interfaces: counted once, on the node
        elif sandbox.state == api_pb2.SANDBOX_READY and detail is not None and detail.pid:
            self._pod_network_from_procfs(pod, detail.pid)
        return pod

    @staticmethod
    def _pod_network_from_cri(pod: tm.Pod, network: api_pb2.NetworkUsage) -> None:
        interfaces = list(network.interfaces)
        if network.HasField("default_interface"):
            interfaces.insert(0, network.default_interface)
        for usage in interfaces:
            out = pod.network.add(name=usage.name)
            for source, target in CRI_NETWORK_FIELDS:
                if usage.HasField(source):
                    setattr(out, target, getattr(usage, source).value)
        pod.network_source = "cri"

    def _node_namespaces(self) -> frozenset[int]:
        """Network namespaces whose interfaces the node figures report: the host init's,
        and the agent's own (node network is read through /proc/self). Fixed for the
        agent's lifetime, so looked up once."""
        if self._node_netns is None:
            found = set()
            for reference in ("1", "self"):
                try:
                    found.add(os.stat(self.paths.proc(reference, "ns", "net")).st_ino)
                except OSError:
                    continue
            self._node_netns = frozenset(found)
        return self._node_netns

    def _in_host_netns(self, pid: int | None) -> bool:
        """Whether `pid` shares a node network namespace: such a pod's traffic is the
        node's and is counted there once."""
        if pid is None:
            return False
        try:
            sandbox = os.stat(self.paths.proc(str(pid), "ns", "net")).st_ino
        except OSError:
            return False
        return sandbox in self._node_namespaces()

    def _pod_network_from_procfs(self, pod: tm.Pod, pid: int) -> None:
        with self.errors.guard("pod_netdev"):
            for counters in parse_net_dev(read_small(self.paths.proc(str(pid), "net", "dev"))):
                if counters.name != "lo":
                    fill_interface(pod.network.add(), counters)
            pod.network_source = "procfs"

    def _container_detail(
        self, container: api_pb2.Container, deadline: float
    ) -> _ContainerDetail | None:
        detail = self._containers.get(container.id)
        if detail is not None and detail.state == container.state:
            return detail
        answer = self._call(
            "ContainerStatus",
            api_pb2.ContainerStatusRequest(container_id=container.id, verbose=True),
            deadline,
        )
        if not isinstance(answer, api_pb2.ContainerStatusResponse):
            return None
        detail = _ContainerDetail(
            state=container.state, status=answer.status, pid=_info_pid(dict(answer.info))
        )
        self._containers[container.id] = detail
        return detail

    def _container(
        self,
        out: tm.Container,
        container: api_pb2.Container,
        stats: api_pb2.ContainerStats | None,
        deadline: float,
    ) -> None:
        detail = self._container_detail(container, deadline)
        if detail is None:
            out.CopyFrom(_container_identity(container, None))
        else:
            if detail.identity is None:
                detail.identity = _container_identity(container, detail.status)
            out.CopyFrom(detail.identity)
        if stats is None:
            return
        self._cpu(out, container.id, stats.cpu)
        if stats.HasField("memory"):
            _fill_memory(out.memory, stats.memory)
        if stats.HasField("writable_layer"):
            _fill_filesystem(out.writable_layer, stats.writable_layer)
        if stats.HasField("swap") and stats.swap.HasField("swap_usage_bytes"):
            out.swap_usage_bytes = stats.swap.swap_usage_bytes.value
        self._container_pressure(out, stats, detail)

    def _cpu(self, out: tm.Container, key: str, cpu: api_pb2.CpuUsage) -> None:
        if not cpu.HasField("usage_core_nano_seconds"):
            return
        usage_ns = cpu.usage_core_nano_seconds.value
        out.cpu.usage_seconds_total = usage_ns / NANOS
        timestamp = cpu.timestamp or time.time_ns()
        rate = self.rates.observe(key, usage_ns, timestamp)
        if rate is not None:
            out.cpu.usage_cores = rate
            out.cpu.rate_source = "computed"
        elif cpu.HasField("usage_nano_cores") and cpu.usage_nano_cores.value > 0:
            out.cpu.usage_cores = cores_from_nano_cores(cpu.usage_nano_cores.value)
            out.cpu.rate_source = "runtime"

    def _container_pressure(
        self, out: tm.Container, stats: api_pb2.ContainerStats, detail: _ContainerDetail | None
    ) -> None:
        from_cri = [
            (resource, usage.psi)
            for resource, usage in (("cpu", stats.cpu), ("memory", stats.memory), ("io", stats.io))
            if usage.HasField("psi")
        ]
        if from_cri:
            for resource, psi in from_cri:
                fill_pressure(out.pressure.add(), resource, _psi_from_cri(psi))
            return
        if detail is None or detail.pid is None or out.state != tm.CONTAINER_STATE_RUNNING:
            return
        if not detail.cgroup_known:
            cgroup_dir = self._cgroup_dir(detail.pid)
            if cgroup_dir is not None:
                folder = str(self.paths.path(cgroup_dir))
                detail.pressure_files = tuple(
                    (resource, f"{folder}/{filename}") for resource, filename in PSI_FILES
                )
            detail.cgroup_known = True
        with self.errors.guard("container_pressure"):
            for resource, path in detail.pressure_files:
                pressure = read_pressure_file(path)
                if pressure is not None:
                    fill_pressure(out.pressure.add(), resource, pressure)

    def _cgroup_dir(self, pid: int) -> str | None:
        """The container's cgroup v2 directory (host-absolute), or None on a cgroup v1-only host."""
        if not self._cgroup2_checked:
            self._cgroup2_checked = True
            try:
                self._cgroup2_mount = find_cgroup2_mount(self.paths.proc("1", "mounts").read_text())
            except OSError:
                self._cgroup2_mount = None
        if self._cgroup2_mount is None:
            return None
        try:
            unified = parse_unified_path(read_small(self.paths.proc(str(pid), "cgroup")))
        except OSError:
            return None  # the process exited between the stats call and now
        if unified is None:
            return None
        return self._cgroup2_mount.rstrip("/") + unified
