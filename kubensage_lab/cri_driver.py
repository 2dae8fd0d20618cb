"""Create real pods and containers over CRI, the way the kubelet does, for integration tests.

Pods get the cgroup parent the kubelet's cgroupfs driver gives them, under a test root:
`<root>/kubepods/pod<uid>` (Guaranteed), `<root>/kubepods/burstable/pod<uid>`,
`<root>/kubepods/besteffort/pod<uid>`; containers carry their CPU and memory resources.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field

import grpc

from kubensage_api.cri import api_pb2, api_pb2_grpc
from kubensage_lab.containerd import WORKLOAD_IMAGE

RPC_TIMEOUT = 60
CFS_PERIOD_MICROS = 100_000
QOS_CLASSES = ("guaranteed", "burstable", "besteffort")
# the kubelet's cpu.shares for a container without a CPU request
MIN_SHARES = 2


@dataclass(frozen=True)
class Resources:
    """A container's requests and limits, turned into what the kubelet sends over CRI."""

    cpu_request: float = 0.0
    cpu_limit: float = 0.0
    memory_limit: int = 0

    def linux(self) -> api_pb2.LinuxContainerResources:
        return api_pb2.LinuxContainerResources(
            cpu_period=CFS_PERIOD_MICROS if self.cpu_limit else 0,
            cpu_quota=int(self.cpu_limit * CFS_PERIOD_MICROS),
            cpu_shares=max(MIN_SHARES, int(self.cpu_request * 1024)),
            memory_limit_in_bytes=self.memory_limit,
        )


@dataclass
class PodHandle:
    sandbox_id: str
    config: api_pb2.PodSandboxConfig
    containers: dict[str, str] = field(default_factory=dict)


class CriDriver:
    def __init__(self, endpoint: str, cgroup_root: str) -> None:
        self.channel = grpc.insecure_channel(endpoint)
        self.runtime = api_pb2_grpc.RuntimeServiceStub(self.channel)
        self.cgroup_root = cgroup_root

    def close(self) -> None:
        self.channel.close()

    def cgroup_parent(self, qos: str, uid: str) -> str:
        if qos not in QOS_CLASSES:
            raise ValueError(f"unknown QoS class {qos!r}")
        classes = "" if qos == "guaranteed" else f"/{qos}"
        return f"{self.cgroup_root}/kubepods{classes}/pod{uid}"

    def run_pod(
        self,
        name: str,
        namespace: str = "default",
        labels: dict[str, str] | None = None,
        qos: str = "besteffort",
        host_network: bool = True,
    ) -> PodHandle:
        """A pod in the node's network namespace, or with `host_network=False` in its own
        (which needs the runtime's CNI: Containerd.enable_pod_network)."""
        uid = str(uuid.uuid4())
        config = api_pb2.PodSandboxConfig(
            metadata=api_pb2.PodSandboxMetadata(name=name, uid=uid, namespace=namespace),
            labels={
                "io.kubernetes.pod.name": name,
                "io.kubernetes.pod.namespace": namespace,
                "io.kubernetes.pod.uid": uid,
                **(labels or {}),
            },
            linux=api_pb2.LinuxPodSandboxConfig(
                cgroup_parent=self.cgroup_parent(qos, uid),
                security_context=api_pb2.LinuxSandboxSecurityContext(
                    namespace_options=api_pb2.NamespaceOption(
                        network=api_pb2.NODE if host_network else api_pb2.POD
                    )
                ),
            ),
        )
        response = self.runtime.RunPodSandbox(
            api_pb2.RunPodSandboxRequest(config=config), timeout=RPC_TIMEOUT
        )
        return PodHandle(sandbox_id=response.pod_sandbox_id, config=config)

    def run_container(
        self,
        pod: PodHandle,
        name: str,
        script: str,
        resources: Resources | None = None,
        attempt: int = 0,
    ) -> str:
        """Create and start a container; `attempt` > 0 is the kubelet's restart of `name`."""
        meta = pod.config.metadata
        config = api_pb2.ContainerConfig(
            metadata=api_pb2.ContainerMetadata(name=name, attempt=attempt),
            image=api_pb2.ImageSpec(image=WORKLOAD_IMAGE),
            command=["/bin/sh", "-c", script],
            labels={
                "io.kubernetes.container.name": name,
                "io.kubernetes.pod.name": meta.name,
                "io.kubernetes.pod.namespace": meta.namespace,
                "io.kubernetes.pod.uid": meta.uid,
            },
            linux=api_pb2.LinuxContainerConfig(resources=(resources or Resources()).linux()),
        )
        created = self.runtime.CreateContainer(
            api_pb2.CreateContainerRequest(
                pod_sandbox_id=pod.sandbox_id, config=config, sandbox_config=pod.config
            ),
            timeout=RPC_TIMEOUT,
        )
        self.runtime.StartContainer(
            api_pb2.StartContainerRequest(container_id=created.container_id), timeout=RPC_TIMEOUT
        )
        pod.containers[name] = created.container_id
        return created.container_id

    def container_status(self, container_id: str) -> api_pb2.ContainerStatus:
        return self.runtime.ContainerStatus(
            api_pb2.ContainerStatusRequest(container_id=container_id), timeout=RPC_TIMEOUT
        ).status

    def stop_container(self, container_id: str) -> None:
        self.runtime.StopContainer(
            api_pb2.StopContainerRequest(container_id=container_id, timeout=0), timeout=RPC_TIMEOUT
        )

    def remove_pod(self, pod: PodHandle) -> None:
        self.runtime.StopPodSandbox(
            api_pb2.StopPodSandboxRequest(pod_sandbox_id=pod.sandbox_id), timeout=RPC_TIMEOUT
        )
        self.runtime.RemovePodSandbox(
            api_pb2.RemovePodSandboxRequest(pod_sandbox_id=pod.sandbox_id), timeout=RPC_TIMEOUT
        )
