"""Pods and containers from the runtime over CRI, with their stats, network and PSI.

Each cycle: ListPodSandbox and ListContainers; ContainerStatus/PodSandboxStatus only for
what is new or changed (their answers are cached per id). The stats calls are made as
collectors/stats_policy.py decides: by default ListContainerStats and ImageFsInfo once per
interval (what only the runtime knows, carried in between), ListPodSandboxStats only for
pods whose network the agent cannot read from /proc/<sandbox pid>/net/dev. Every call
shares one cycle deadline; a failed call costs only the fields it would have given. A
running container's cgroup, named by its verbose status, gives CPU, memory, swap, PSI and
what CRI does not carry (collectors/cgroup.py); which source wins where both give a figure
is decided in collectors/container_stats.py.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from kubensage_agent.collectors.cgroup import CgroupCollector
from kubensage_agent.collectors.container_stats import (
    cgroup_usage_wanted,
    fill_filesystem,
    fill_stats,
    host_cgroup_reflects,
)
from kubensage_agent.collectors.errors import CollectorErrors
from kubensage_agent.collectors.fill import fill_interface
from kubensage_agent.collectors.stats_policy import CRI, CallSchedule, StatsPolicy
from kubensage_agent.cri.client import CriClient, CriError
from kubensage_agent.cri.verbose import SpecResources, VerboseInfo, parse_verbose_info
from kubensage_agent.hostfs import HostPaths, read_small
from kubensage_agent.parsers.netdev import parse_net_dev
from kubensage_agent.rates import CpuRateTracker
from kubensage_agent.wire.status import StatusCode
from kubensage_api.cri import api_pb2
from kubensage_api.telemetry import telemetry_pb2 as tm

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


@dataclass
class _ContainerDetail:
    """What ContainerStatus told us; valid while the container stays in `state`. Only
    what later cycles use is kept, not the runtime's answer."""

    state: int
    # its host cgroup counts the container itself (not a VM around it)
    host_cgroup_reflects: bool
    # the container's cgroup relative to the hierarchy root ("" when unknown)
    cgroup_path: str
    # the parts of the Container message fixed while the container stays in `state`
    identity: tm.Container


@dataclass
class _SandboxDetail:
    pid: int | None
    # the parts of the Pod message that never change for a sandbox
    identity: tm.Pod
    # the sandbox shares the host's network namespace (hostNetwork: true)
    host_network: bool = False
    # its /proc/<pid>/net/dev could not be read in the last cycle
    procfs_failed: bool = False


NetworkField = Literal["rx_bytes", "rx_errors", "tx_bytes", "tx_errors"]
CRI_NETWORK_FIELDS: tuple[tuple[NetworkField, str], ...] = (
    ("rx_bytes", "receive_bytes"),
    ("rx_errors", "receive_errors"),
    ("tx_bytes", "transmit_bytes"),
    ("tx_errors", "transmit_errors"),
)


def _fill_limits(
    target: tm.Container, status: api_pb2.ContainerStatus, spec: SpecResources
) -> None:
    """Limits from the CRI status, or from the runtime spec when the runtime leaves the
    status empty (containerd 1.6)."""
    linux = status.resources.linux
    quota, period, shares, memory = (
        (linux.cpu_quota, linux.cpu_period, linux.cpu_shares, linux.memory_limit_in_bytes)
        if status.resources.HasField("linux") and linux.ByteSize() > 0
        else (spec.cpu_quota, spec.cpu_period, spec.cpu_shares, spec.memory_limit)
    )
    limits = target.limits
    if quota and quota > 0 and period and period > 0:
        limits.cpu_cores = quota / period
        limits.cpu_quota_micros = quota
        limits.cpu_period_micros = period
    if shares and shares > 0:
        limits.cpu_shares = shares
    if memory and memory > 0:
        limits.memory_bytes = memory


def _cap(values: dict[str, str]) -> dict[str, str]:
    return {k: v[:MAX_ANNOTATION_VALUE] for k, v in values.items()}


def _container_identity(
    container: api_pb2.Container,
    status: api_pb2.ContainerStatus | None,
    verbose: VerboseInfo | None,
    cgroup_path: str = "",
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
    if status is not None and verbose is not None:
        out.started_at_unix_nanos = status.started_at
        out.finished_at_unix_nanos = status.finished_at
        out.exit_code = status.exit_code
        out.reason = status.reason
        if status.image.image and not out.image:
            out.image = status.image.image
        _fill_limits(out, status, verbose.resources)
        out.cgroup_path = cgroup_path
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
    def __init__(
        self,
        client: CriClient,
        paths: HostPaths,
        errors: CollectorErrors,
        cgroups: CgroupCollector | None = None,
        policy: StatsPolicy | None = None,
    ) -> None:
        self.client = client
        self.paths = paths
        self.errors = errors
        self.cgroups = cgroups if cgroups is not None else CgroupCollector(paths, errors)
        self.policy = policy if policy is not None else StatsPolicy()
        self.rates = CpuRateTracker()
        self.cri_errors_total = 0
        self._containers: dict[str, _ContainerDetail] = {}
        self._sandboxes: dict[str, _SandboxDetail] = {}
        self._pod_stats_implemented = True
        self._node_netns: frozenset[int] | None = None
        interval = self.policy.cri_stats_interval
        self._container_stats = CallSchedule(interval)
        self._pod_stats = CallSchedule(interval)
        # image filesystems are in the first report too
        self._image_fs_schedule = CallSchedule(interval, in_first_cycle=True)
        # what only the runtime knows, carried from its last answer to every report
        self._writable_layers: dict[str, api_pb2.FilesystemUsage] = {}
        self._image_fs: list[tm.FilesystemUsage] = []

    def close(self) -> None:
        self.client.close()
        self.cgroups.close()

    def _call(self, method: str, request: object, deadline: float) -> Any:
        """One CRI call; on failure count it, log the cause once, and return None."""
        try:
            response = self.client.call(method, request, deadline)
        except CriError as exc:
            self._record(method, [exc])
            return None
        self._record(method, [])
        return response

    def _call_all(self, method: str, requests: Sequence[Any], deadline: float) -> list[Any]:
        """`method` for every request at once; a failed one counts as `_call`'s do and
        gives None."""
        answers = self.client.call_all(method, requests, deadline)
        if answers:
            self._record(method, [a for a in answers if isinstance(a, CriError)])
        return [None if isinstance(a, CriError) else a for a in answers]

    def _record(self, method: str, failures: Sequence[CriError]) -> None:
        """Count the failed calls of `method` and log the first cause once; none failing
        clears it."""
        if failures:
            self.cri_errors_total += len(failures)
            self.errors.once.problem(f"cri:{method}", f"CRI {failures[0]}")
        else:
            self.errors.once.clear(f"cri:{method}")

    def collect(
        self, deadline: float, into: tm.Metrics | None = None
    ) -> tuple[Sequence[tm.Pod], Sequence[tm.FilesystemUsage]]:
        """Pods with their containers, and the image filesystems, added to `into` (a new
        report when None) and returned; none when the runtime is down."""
        report = into if into is not None else tm.Metrics()
        sandboxes = self._call("ListPodSandbox", api_pb2.ListPodSandboxRequest(), deadline)
        if not isinstance(sandboxes, api_pb2.ListPodSandboxResponse):
            return report.pods, report.image_filesystems
        listed = self._call("ListContainers", api_pb2.ListContainersRequest(), deadline)
        listed_containers = (
            listed.containers if isinstance(listed, api_pb2.ListContainersResponse) else []
        )
        self._look_up_new(sandboxes.items, listed_containers, deadline)
        containers = [(c, self._current_detail(c)) for c in listed_containers]
        details = {s.id: self._sandboxes.get(s.id) for s in sandboxes.items}
        now = time.monotonic()
        stats = self._container_stats_if_wanted(containers, now, deadline)
        pod_stats = self._pod_sandbox_stats_if_wanted(sandboxes.items, details, now, deadline)
        self._image_filesystems_if_due(now, deadline)

        pods: dict[str, tm.Pod] = {}
        for sandbox in sandboxes.items:
            pod = pods[sandbox.id] = report.pods.add()
            self._pod(pod, sandbox, details[sandbox.id], pod_stats.get(sandbox.id))
        for container, detail in containers:
            owner = pods.get(container.pod_sandbox_id)
            if owner is None:
                continue  # created between our two list calls; it appears next cycle
            self._container(owner, container, detail, stats.get(container.id))
        report.image_filesystems.extend(self._image_fs)

        self.cgroups.end_cycle(report.pods)
        live = {c.id for c, _ in containers}
        self.rates.retain(live)
        self._containers = {k: v for k, v in self._containers.items() if k in live}
        self._writable_layers = {k: v for k, v in self._writable_layers.items() if k in live}
        self._sandboxes = {k: v for k, v in self._sandboxes.items() if k in pods}
        return report.pods, report.image_filesystems

    def _has_host_cgroup(
        self, container: api_pb2.Container, detail: _ContainerDetail | None
    ) -> bool:
        """Whether a running container's figures can come from its cgroup on this host."""
        return (
            detail is not None
            and detail.host_cgroup_reflects
            and self.cgroups.readable(container.id, detail.cgroup_path)
        )

    def _container_stats_if_wanted(
        self,
        containers: list[tuple[api_pb2.Container, _ContainerDetail | None]],
        now: float,
        deadline: float,
    ) -> dict[str, api_pb2.ContainerStats]:
        """ListContainerStats when due for the writable layer, and every cycle while a
        running container has no host cgroup (VM-isolated, or one the agent cannot find)
        or the runtime's figures are preferred."""
        needed = self.policy.prefer == CRI or any(
            not self._has_host_cgroup(c, d)
            for c, d in containers
            if c.state == api_pb2.CONTAINER_RUNNING
        )
        if not (self._container_stats.due(now) or needed):
            return {}
        started = time.monotonic()
        answer = self._call("ListContainerStats", api_pb2.ListContainerStatsRequest(), deadline)
        if not isinstance(answer, api_pb2.ListContainerStatsResponse):
            return {}
        self._container_stats.measured(now, time.monotonic() - started, len(answer.stats))
        stats = {s.attributes.id: s for s in answer.stats}
        for container_id, entry in stats.items():
            if entry.HasField("writable_layer"):
                self._writable_layers[container_id] = entry.writable_layer
        return stats

    def _pod_sandbox_stats_if_wanted(
        self,
        sandboxes: Sequence[api_pb2.PodSandbox],
        details: dict[str, _SandboxDetail | None],
        now: float,
        deadline: float,
    ) -> dict[str, api_pb2.PodSandboxStats]:
        """ListPodSandboxStats only for pods whose network the agent cannot read itself
        (or all when the runtime's figures are preferred), every cycle while its answers
        are cheap, else once per interval; with interval 0, every cycle."""
        if not self._pod_stats_implemented:
            return {}
        needed = any(
            self._pod_network_from_runtime(detail)
            for sandbox in sandboxes
            if sandbox.state == api_pb2.SANDBOX_READY
            for detail in (details.get(sandbox.id),)
        )
        if not (self.policy.every_cycle or self._pod_stats.needed_and_affordable(needed, now)):
            return {}
        started = time.monotonic()
        try:
            answer = self.client.call(
                "ListPodSandboxStats", api_pb2.ListPodSandboxStatsRequest(), deadline
            )
        except CriError as exc:
            if exc.code == StatusCode.UNIMPLEMENTED:
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
        self._pod_stats.measured(now, time.monotonic() - started, len(answer.stats))
        self.errors.once.clear("cri:ListPodSandboxStats")
        return {s.attributes.id: s for s in answer.stats}

    def _pod_network_from_runtime(self, detail: _SandboxDetail | None) -> bool:
        """Whether a ready pod's network is wanted from the runtime: it is preferred, or
        the agent cannot read it (no sandbox pid, or its /proc/<pid>/net/dev failed);
        never for a pod on the node's network, counted on the node."""
        if detail is not None and detail.host_network:
            return False
        return self.policy.prefer == CRI or detail is None or not detail.pid or detail.procfs_failed

    def _image_filesystems_if_due(self, now: float, deadline: float) -> None:
        """ImageFsInfo once per interval (the first cycle included): image filesystems
        change when images are pulled or removed, and the last answer is carried."""
        schedule = self._image_fs_schedule
        if not schedule.due(now):
            return
        started = time.monotonic()
        answer = self._call("ImageFsInfo", api_pb2.ImageFsInfoRequest(), deadline)
        if not isinstance(answer, api_pb2.ImageFsInfoResponse):
            return
        schedule.measured(now, time.monotonic() - started, len(answer.image_filesystems))
        image_fs = []
        for usage in answer.image_filesystems:
            out = tm.FilesystemUsage()
            fill_filesystem(out, usage)
            image_fs.append(out)
        self._image_fs = image_fs

    def _look_up_new(
        self,
        sandboxes: Sequence[api_pb2.PodSandbox],
        containers: Sequence[api_pb2.Container],
        deadline: float,
    ) -> None:
        """PodSandboxStatus and ContainerStatus for what is new or changed state, all in
        flight at once; their answers are kept until it changes again or goes."""
        new_sandboxes = [s for s in sandboxes if s.id not in self._sandboxes]
        answers = self._call_all(
            "PodSandboxStatus",
            [
                api_pb2.PodSandboxStatusRequest(pod_sandbox_id=s.id, verbose=True)
                for s in new_sandboxes
            ],
            deadline,
        )
        for sandbox, answer in zip(new_sandboxes, answers, strict=True):
            if answer is not None:
                self._sandboxes[sandbox.id] = self._sandbox_detail(sandbox, answer)
        handlers = {s.id: s.runtime_handler for s in sandboxes}
        changed = [c for c in containers if self._current_detail(c) is None]
        answers = self._call_all(
            "ContainerStatus",
            [api_pb2.ContainerStatusRequest(container_id=c.id, verbose=True) for c in changed],
            deadline,
        )
        for container, answer in zip(changed, answers, strict=True):
            if answer is not None:
                handler = handlers.get(container.pod_sandbox_id, "")
                self._containers[container.id] = self._container_detail(container, handler, answer)

    def _current_detail(self, container: api_pb2.Container) -> _ContainerDetail | None:
        """What ContainerStatus said about the container in the state it is in now."""
        detail = self._containers.get(container.id)
        return detail if detail is not None and detail.state == container.state else None

    def _sandbox_detail(
        self, sandbox: api_pb2.PodSandbox, answer: api_pb2.PodSandboxStatusResponse
    ) -> _SandboxDetail:
        network = answer.status.network
        ips = [ip for ip in [network.ip, *(a.ip for a in network.additional_ips)] if ip]
        pid = parse_verbose_info(answer.info).pid
        return _SandboxDetail(
            pid=pid, identity=_pod_identity(sandbox, ips), host_network=self._in_host_netns(pid)
        )

    def _pod(
        self,
        pod: tm.Pod,
        sandbox: api_pb2.PodSandbox,
        detail: _SandboxDetail | None,
        stats: api_pb2.PodSandboxStats | None,
    ) -> None:
        pod.CopyFrom(detail.identity if detail is not None else _pod_identity(sandbox, []))
        pod.state = POD_STATES.get(sandbox.state, tm.POD_STATE_UNSPECIFIED)
        from_cri = (
            stats.linux.network if stats is not None and stats.linux.HasField("network") else None
        )
        if from_cri is not None and self.policy.prefer == CRI:
            self._pod_network_from_cri(pod, from_cri)
        elif detail is not None and detail.host_network:
            pod.network_source = "host"  # the node's own interfaces: counted once, on the node
        elif (
            sandbox.state == api_pb2.SANDBOX_READY
            and detail is not None
            and detail.pid
            and self._pod_network_from_procfs(pod, detail)
        ):
            return
        elif from_cri is not None:
            self._pod_network_from_cri(pod, from_cri)

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

    def _pod_network_from_procfs(self, pod: tm.Pod, detail: _SandboxDetail) -> bool:
        """The sandbox's interfaces from /proc/<pid>/net/dev, which reads its network
        namespace; False when that failed (then the runtime is asked next cycle)."""
        detail.procfs_failed = True
        with self.errors.guard("pod_netdev"):
            text = read_small(self.paths.proc(str(detail.pid), "net", "dev"))
            for counters in parse_net_dev(text):
                if counters.name != "lo":
                    fill_interface(pod.network.add(), counters)
            pod.network_source = "procfs"
            detail.procfs_failed = False
        return not detail.procfs_failed

    def _container_detail(
        self,
        container: api_pb2.Container,
        runtime_handler: str,
        answer: api_pb2.ContainerStatusResponse,
    ) -> _ContainerDetail:
        verbose = parse_verbose_info(answer.info)
        cgroup_path = self.cgroups.relative_path(verbose.cgroups_path)
        return _ContainerDetail(
            state=container.state,
            host_cgroup_reflects=host_cgroup_reflects(runtime_handler, verbose.runtime_type),
            cgroup_path=cgroup_path,
            identity=_container_identity(container, answer.status, verbose, cgroup_path),
        )

    def _container(
        self,
        pod: tm.Pod,
        container: api_pb2.Container,
        detail: _ContainerDetail | None,
        stats: api_pb2.ContainerStats | None,
    ) -> None:
        out = pod.containers.add()
        out.CopyFrom(
            detail.identity if detail is not None else _container_identity(container, None, None)
        )
        sample = None
        order = self.policy.order
        if (
            detail is not None
            and container.state == api_pb2.CONTAINER_RUNNING
            and detail.host_cgroup_reflects
        ):
            sample = self.cgroups.sample(
                container.id, detail.cgroup_path, usage=cgroup_usage_wanted(stats, order)
            )
        fill_stats(out, stats, sample, self.rates, self.cgroups.devices, order=order)
        writable = self._writable_layers.get(container.id)
        if writable is not None:
            fill_filesystem(out.writable_layer, writable)
        self.cgroups.observe_oom_kills(pod.sandbox_id, out, sample)
