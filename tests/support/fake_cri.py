"""An in-process CRI server speaking our runtime.v1 proto, for runtimes we cannot install here.

Behaviour is data: a FakeRuntime holds the pods, containers and stats to answer
with, plus switches for the quirks of CRI-O, cri-dockerd and broken runtimes.
"""

from __future__ import annotations

import json
import threading
import time
from concurrent import futures
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc

from kubensage_api.cri import api_pb2, api_pb2_grpc

NANOS = 1_000_000_000


@dataclass
class FakeContainer:
    id: str
    sandbox_id: str
    name: str
    state: int = api_pb2.CONTAINER_RUNNING
    usage_ns: int = 0
    nano_cores: int | None = None
    working_set: int | None = 10 * 1024 * 1024
    with_stats: bool = True
    psi: bool = False
    pid: int | None = None
    memory_limit: int = 0
    cpu_quota: int = 0
    attempt: int = 0
    reason: str = "OOMKilled"  # given once exited
    # the verbose status document (info["info"]) as the runtime writes it
    info: str | None = None
    # CRI status carries no resources (containerd 1.6): limits only in the runtime spec
    status_resources: bool = True
    writable_layer_bytes: int = 4096


@dataclass
class FakeRuntime:
    name: str = "fake"
    version: str = "1.0.0"
    pods: dict[str, dict[str, str]] = field(default_factory=dict)  # id -> name/namespace/uid
    containers: list[FakeContainer] = field(default_factory=list)
    unimplemented: set[str] = field(default_factory=set)
    hang: set[str] = field(default_factory=set)
    hang_seconds: float = 30.0
    failing: dict[str, grpc.StatusCode] = field(default_factory=dict)
    pod_network: bool = True
    sandbox_pid: int | None = None
    # seconds ListPodSandboxStats takes per sandbox (containerd 1.x execs `runc ps` each)
    pod_stats_seconds_per_sandbox: float = 0.0
    calls: list[str] = field(default_factory=list)
    remaining_at_entry: dict[str, float] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add_pod(
        self, sandbox_id: str, name: str, namespace: str = "default", runtime_handler: str = ""
    ) -> None:
        self.pods[sandbox_id] = {
            "name": name,
            "namespace": namespace,
            "uid": f"uid-{sandbox_id}",
            "runtime_handler": runtime_handler,
        }

    def enter(self, method: str, context: grpc.ServicerContext) -> None:
        with self.lock:
            self.calls.append(method)
            remaining = context.time_remaining()
            if remaining is not None:
                self.remaining_at_entry[method] = remaining
        if method in self.unimplemented:
            context.abort(grpc.StatusCode.UNIMPLEMENTED, f"{method} not implemented")
        if method in self.failing:
            context.abort(self.failing[method], f"{method} failed on purpose")
        if method in self.hang:
            deadline = time.monotonic() + self.hang_seconds
            while context.is_active() and time.monotonic() < deadline:
                time.sleep(0.05)


def _meta(runtime: FakeRuntime, sandbox_id: str) -> api_pb2.PodSandboxMetadata:
    pod = runtime.pods[sandbox_id]
    return api_pb2.PodSandboxMetadata(name=pod["name"], namespace=pod["namespace"], uid=pod["uid"])


def _psi(total_ns: int) -> api_pb2.PsiStats:
    data = api_pb2.PsiData(total=total_ns, avg10=1.5, avg60=1.0, avg300=0.5)
    return api_pb2.PsiStats(some=data, full=data)


class _RuntimeService(api_pb2_grpc.RuntimeServiceServicer):
    def __init__(self, runtime: FakeRuntime) -> None:
        self.rt = runtime

    def Version(self, request: Any, context: grpc.ServicerContext) -> api_pb2.VersionResponse:
        self.rt.enter("Version", context)
        return api_pb2.VersionResponse(
            version="0.1.0",
            runtime_name=self.rt.name,
            runtime_version=self.rt.version,
            runtime_api_version="v1",
        )

    def ListPodSandbox(self, request: Any, context: grpc.ServicerContext) -> Any:
        self.rt.enter("ListPodSandbox", context)
        items = [
            api_pb2.PodSandbox(
                id=sid,
                metadata=_meta(self.rt, sid),
                state=api_pb2.SANDBOX_READY,
                created_at=1_700_000_000 * NANOS,
                labels={"app": pod["name"]},
                annotations={"big": "x" * 10_000},
                runtime_handler=pod["runtime_handler"],
            )
            for sid, pod in self.rt.pods.items()
        ]
        return api_pb2.ListPodSandboxResponse(items=items)

    def PodSandboxStatus(self, request: Any, context: grpc.ServicerContext) -> Any:
        self.rt.enter("PodSandboxStatus", context)
        sid = request.pod_sandbox_id
        info = {"info": json.dumps({"pid": self.rt.sandbox_pid})} if self.rt.sandbox_pid else {}
        return api_pb2.PodSandboxStatusResponse(
            status=api_pb2.PodSandboxStatus(
                id=sid,
                metadata=_meta(self.rt, sid),
                network=api_pb2.PodSandboxNetworkStatus(ip="10.0.0.7"),
            ),
            info=info,
        )

    def ListContainers(self, request: Any, context: grpc.ServicerContext) -> Any:
        self.rt.enter("ListContainers", context)
        return api_pb2.ListContainersResponse(
            containers=[
                api_pb2.Container(
                    id=c.id,
                    pod_sandbox_id=c.sandbox_id,
                    metadata=api_pb2.ContainerMetadata(name=c.name, attempt=c.attempt),
                    image=api_pb2.ImageSpec(image="registry.local/app:1"),
                    image_ref="sha256:feed",
                    state=c.state,
                    created_at=1_700_000_100 * NANOS,
                    labels={"io.kubernetes.container.name": c.name},
                )
                for c in self.rt.containers
            ]
        )

    def ContainerStatus(self, request: Any, context: grpc.ServicerContext) -> Any:
        self.rt.enter("ContainerStatus", context)
        c = next(c for c in self.rt.containers if c.id == request.container_id)
        info = {"info": json.dumps({"pid": c.pid})} if c.pid else {}
        if c.info is not None:
            info = {"info": c.info}
        exited = c.state == api_pb2.CONTAINER_EXITED
        resources = api_pb2.ContainerResources()
        if c.status_resources:
            resources.linux.CopyFrom(
                api_pb2.LinuxContainerResources(
                    cpu_period=100_000 if c.cpu_quota else 0,
                    cpu_quota=c.cpu_quota,
                    memory_limit_in_bytes=c.memory_limit,
                )
            )
        return api_pb2.ContainerStatusResponse(
            status=api_pb2.ContainerStatus(
                id=c.id,
                metadata=api_pb2.ContainerMetadata(name=c.name),
                state=c.state,
                started_at=1_700_000_200 * NANOS,
                finished_at=1_700_000_300 * NANOS if exited else 0,
                exit_code=137 if exited else 0,
                reason=c.reason if exited else "",
                resources=resources,
            ),
            info=info,
        )

    def ListContainerStats(self, request: Any, context: grpc.ServicerContext) -> Any:
        self.rt.enter("ListContainerStats", context)
        now = time.time_ns()
        stats = []
        for c in self.rt.containers:
            if not c.with_stats or c.state != api_pb2.CONTAINER_RUNNING:
                continue
            cpu = api_pb2.CpuUsage(
                timestamp=now, usage_core_nano_seconds=api_pb2.UInt64Value(value=c.usage_ns)
            )
            if c.nano_cores is not None:
                cpu.usage_nano_cores.value = c.nano_cores
            memory = api_pb2.MemoryUsage(timestamp=now)
            if c.working_set is not None:
                memory.working_set_bytes.value = c.working_set
                memory.usage_bytes.value = c.working_set * 2
            entry = api_pb2.ContainerStats(
                attributes=api_pb2.ContainerAttributes(
                    id=c.id, metadata=api_pb2.ContainerMetadata(name=c.name)
                ),
                cpu=cpu,
                memory=memory,
                writable_layer=api_pb2.FilesystemUsage(
                    fs_id=api_pb2.FilesystemIdentifier(mountpoint="/var/lib/fake/overlay"),
                    used_bytes=api_pb2.UInt64Value(value=c.writable_layer_bytes),
                    inodes_used=api_pb2.UInt64Value(value=7),
                ),
            )
            if c.psi:
                entry.cpu.psi.CopyFrom(_psi(2 * NANOS))
                entry.memory.psi.CopyFrom(_psi(NANOS))
                entry.io.psi.CopyFrom(_psi(NANOS // 2))
            stats.append(entry)
        return api_pb2.ListContainerStatsResponse(stats=stats)

    def ListPodSandboxStats(self, request: Any, context: grpc.ServicerContext) -> Any:
        self.rt.enter("ListPodSandboxStats", context)
        time.sleep(self.rt.pod_stats_seconds_per_sandbox * len(self.rt.pods))
        stats = []
        for sid in self.rt.pods:
            entry = api_pb2.PodSandboxStats(
                attributes=api_pb2.PodSandboxAttributes(id=sid, metadata=_meta(self.rt, sid))
            )
            if self.rt.pod_network:
                entry.linux.network.default_interface.CopyFrom(
                    api_pb2.NetworkInterfaceUsage(
                        name="eth0",
                        rx_bytes=api_pb2.UInt64Value(value=1000),
                        tx_bytes=api_pb2.UInt64Value(value=2000),
                        rx_errors=api_pb2.UInt64Value(value=1),
                        tx_errors=api_pb2.UInt64Value(value=2),
                    )
                )
            stats.append(entry)
        return api_pb2.ListPodSandboxStatsResponse(stats=stats)


class _ImageService(api_pb2_grpc.ImageServiceServicer):
    def __init__(self, runtime: FakeRuntime) -> None:
        self.rt = runtime

    def ImageFsInfo(self, request: Any, context: grpc.ServicerContext) -> Any:
        self.rt.enter("ImageFsInfo", context)
        return api_pb2.ImageFsInfoResponse(
            image_filesystems=[
                api_pb2.FilesystemUsage(
                    fs_id=api_pb2.FilesystemIdentifier(mountpoint="/var/lib/fake"),
                    used_bytes=api_pb2.UInt64Value(value=5 * 1024**3),
                    inodes_used=api_pb2.UInt64Value(value=1234),
                )
            ]
        )


def _v1alpha2_version(request: bytes, context: grpc.ServicerContext) -> bytes:
    return api_pb2.VersionResponse(
        version="0.1.0", runtime_name="old", runtime_version="1.4", runtime_api_version="v1alpha2"
    ).SerializeToString()


def _identity(data: bytes) -> bytes:
    return data


class FakeCriServer:
    """Serves a FakeRuntime on a unix socket; `v1alpha2_only` serves nothing but the old API."""

    def __init__(self, socket_path: Path, runtime: FakeRuntime, v1alpha2_only: bool = False):
        self.socket_path = socket_path
        self.runtime = runtime
        self.server = grpc.server(futures.ThreadPoolExecutor(max_workers=8))
        if v1alpha2_only:
            handler = grpc.method_handlers_generic_handler(
                "runtime.v1alpha2.RuntimeService",
                {
                    "Version": grpc.unary_unary_rpc_method_handler(
                        _v1alpha2_version,
                        request_deserializer=_identity,
                        response_serializer=_identity,
                    )
                },
            )
            self.server.add_generic_rpc_handlers((handler,))
        else:
            api_pb2_grpc.add_RuntimeServiceServicer_to_server(_RuntimeService(runtime), self.server)
            api_pb2_grpc.add_ImageServiceServicer_to_server(_ImageService(runtime), self.server)
        socket_path.parent.mkdir(parents=True, exist_ok=True)
        self.server.add_insecure_port(f"unix://{socket_path}")

    @property
    def endpoint(self) -> str:
        return f"unix://{self.socket_path}"

    def __enter__(self) -> FakeCriServer:
        self.server.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.stop(grace=None).wait(5)
