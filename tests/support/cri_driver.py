"""Create real pods and containers over CRI, the way the kubelet does, for integration tests."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field

import grpc

from kubensage_api.cri import api_pb2, api_pb2_grpc
from tests.support.containerd import WORKLOAD_IMAGE

RPC_TIMEOUT = 60


@dataclass
class PodHandle:
    sandbox_id: str
    config: api_pb2.PodSandboxConfig
    containers: dict[str, str] = field(default_factory=dict)


class CriDriver:
    def __init__(self, endpoint: str) -> None:
        self.channel = grpc.insecure_channel(endpoint)
        self.runtime = api_pb2_grpc.RuntimeServiceStub(self.channel)

    def close(self) -> None:
        self.channel.close()

    def run_pod(
        self,
        name: str,
        namespace: str = "default",
        labels: dict[str, str] | None = None,
        cgroup_parent: str = "",
    ) -> PodHandle:
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
                cgroup_parent=cgroup_parent,
                security_context=api_pb2.LinuxSandboxSecurityContext(
                    namespace_options=api_pb2.NamespaceOption(network=api_pb2.NODE)
                ),
            ),
        )
        response = self.runtime.RunPodSandbox(
            api_pb2.RunPodSandboxRequest(config=config), timeout=RPC_TIMEOUT
        )
        return PodHandle(sandbox_id=response.pod_sandbox_id, config=config)

    def run_container(self, pod: PodHandle, name: str, script: str) -> str:
        meta = pod.config.metadata
        config = api_pb2.ContainerConfig(
            metadata=api_pb2.ContainerMetadata(name=name),
            image=api_pb2.ImageSpec(image=WORKLOAD_IMAGE),
            command=["/bin/sh", "-c", script],
            labels={
                "io.kubernetes.container.name": name,
                "io.kubernetes.pod.name": meta.name,
                "io.kubernetes.pod.namespace": meta.namespace,
                "io.kubernetes.pod.uid": meta.uid,
            },
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
