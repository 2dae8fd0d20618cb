"""Slim projections of Kubernetes objects: only the fields the exposition uses are kept.

Full objects (and the client's model classes) cost kilobytes each; at 10,000 pods and
their ReplicaSets that is the memory a relay would otherwise spend on caches.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from decimal import InvalidOperation
from typing import Any

from kubernetes.utils import parse_quantity

ZONE = "topology.kubernetes.io/zone"
REGION = "topology.kubernetes.io/region"
INSTANCE_TYPE = "node.kubernetes.io/instance-type"
LEGACY = {
    ZONE: "failure-domain.beta.kubernetes.io/zone",
    REGION: "failure-domain.beta.kubernetes.io/region",
    INSTANCE_TYPE: "beta.kubernetes.io/instance-type",
}
CLUSTER_NAME_LABELS = (
    "alpha.eksctl.io/cluster-name",
    "kubernetes.azure.com/cluster",
    "cluster.x-k8s.io/cluster-name",
)


@dataclass(frozen=True, slots=True)
class Owner:
    kind: str
    name: str


@dataclass(frozen=True, slots=True)
class ContainerResources:
    name: str
    cpu_request: float | None
    cpu_limit: float | None
    memory_request: float | None
    memory_limit: float | None


@dataclass(frozen=True, slots=True)
class PodInfo:
    uid: str
    namespace: str
    name: str
    owner: Owner | None
    qos_class: str
    priority_class: str
    host_network: bool
    labels: tuple[tuple[str, str], ...]
    containers: tuple[ContainerResources, ...]
    template_hash: str


@dataclass(frozen=True, slots=True)
class NodeInfo:
    name: str
    region: str
    zone: str
    instance_type: str
    kubelet_version: str
    runtime_version: str
    provider: str
    cluster_name: str


def _quantity(values: Mapping[str, Any], key: str) -> float | None:
    raw = values.get(key)
    if raw is None:
        return None
    try:
        return float(parse_quantity(raw))
    except (ValueError, InvalidOperation, TypeError):
        return None


def controller_owner(meta: Mapping[str, Any]) -> Owner | None:
    for ref in meta.get("ownerReferences") or ():
        if ref.get("controller"):
            return Owner(str(ref.get("kind", "")), str(ref.get("name", "")))
    return None


def project_pod(obj: Mapping[str, Any], keep_label: Callable[[str], bool]) -> PodInfo:
    meta, spec = obj.get("metadata") or {}, obj.get("spec") or {}
    labels = meta.get("labels") or {}
    containers = []
    for container in spec.get("containers") or ():
        resources = container.get("resources") or {}
        requests, limits = resources.get("requests") or {}, resources.get("limits") or {}
        containers.append(
            ContainerResources(
                name=str(container.get("name", "")),
                cpu_request=_quantity(requests, "cpu"),
                cpu_limit=_quantity(limits, "cpu"),
                memory_request=_quantity(requests, "memory"),
                memory_limit=_quantity(limits, "memory"),
            )
        )
    return PodInfo(
        uid=str(meta.get("uid", "")),
        namespace=str(meta.get("namespace", "")),
        name=str(meta.get("name", "")),
        owner=controller_owner(meta),
        qos_class=str((obj.get("status") or {}).get("qosClass", "")),
        priority_class=str(spec.get("priorityClassName", "")),
        host_network=bool(spec.get("hostNetwork", False)),
        labels=tuple(sorted((k, str(v)) for k, v in labels.items() if keep_label(k))),
        containers=tuple(containers),
        template_hash=str(labels.get("pod-template-hash", "")),
    )


def provider_of(provider_id: str) -> str:
    """Cloud provider from a node's providerID: aws://..., gce://..., azure://..., kind://..."""
    scheme, sep, _ = provider_id.partition("://")
    return scheme if sep else ""


def project_node(obj: Mapping[str, Any]) -> NodeInfo:
    meta = obj.get("metadata") or {}
    labels = meta.get("labels") or {}
    node_info = (obj.get("status") or {}).get("nodeInfo") or {}

    def label(key: str) -> str:
        return str(labels.get(key) or labels.get(LEGACY[key], ""))

    cluster = next((str(labels[k]) for k in CLUSTER_NAME_LABELS if labels.get(k)), "")
    return NodeInfo(
        name=str(meta.get("name", "")),
        region=label(REGION),
        zone=label(ZONE),
        instance_type=label(INSTANCE_TYPE),
        kubelet_version=str(node_info.get("kubeletVersion", "")),
        runtime_version=str(node_info.get("containerRuntimeVersion", "")),
        provider=provider_of(str((obj.get("spec") or {}).get("providerID", ""))),
        cluster_name=cluster,
    )


def project_owner(obj: Mapping[str, Any]) -> Owner | None:
    """A ReplicaSet's or Job's controlling owner; objects without one need no entry."""
    return controller_owner(obj.get("metadata") or {})


def namespaced_key(obj: Mapping[str, Any]) -> str:
    meta = obj.get("metadata") or {}
    return f"{meta.get('namespace', '')}/{meta.get('name', '')}"


def uid_key(obj: Mapping[str, Any]) -> str:
    return str((obj.get("metadata") or {}).get("uid", ""))


def name_key(obj: Mapping[str, Any]) -> str:
    return str((obj.get("metadata") or {}).get("name", ""))
