"""Which workload a pod belongs to, walking ReplicaSet -> Deployment and Job -> CronJob."""

from __future__ import annotations

from collections.abc import Mapping

from relay.enrich.objects import Owner, PodInfo


def resolve_workload(
    pod: PodInfo, replicasets: Mapping[str, Owner], jobs: Mapping[str, Owner]
) -> tuple[str, str]:
    """(kind, name) of the top-level controller, or ("", "") for a bare pod."""
    owner = pod.owner
    if owner is None:
        return "", ""
    if owner.kind == "ReplicaSet":
        parent = replicasets.get(f"{pod.namespace}/{owner.name}")
        if parent is not None:
            return parent.kind, parent.name
        # Not (yet) in the cache: a Deployment names its ReplicaSets <deployment>-<hash>
        # and stamps the hash on the pods, which identifies the Deployment exactly.
        suffix = f"-{pod.template_hash}"
        if pod.template_hash and owner.name.endswith(suffix):
            return "Deployment", owner.name.removesuffix(suffix)
        return "ReplicaSet", owner.name
    if owner.kind == "Job":
        parent = jobs.get(f"{pod.namespace}/{owner.name}")
        if parent is not None:
            return parent.kind, parent.name
        return "Job", owner.name
    return owner.kind, owner.name
