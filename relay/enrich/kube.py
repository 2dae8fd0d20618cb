"""Enrichment from the Kubernetes API: pods, nodes, replicasets and jobs, cached by informers.

In a cluster the service account is used; outside, a kubeconfig; with neither,
enrichment is off (one log line) and everything else works from CRI data alone.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from kubernetes import client

from relay.enrich.informer import Informer
from relay.enrich.objects import (
    NodeInfo,
    Owner,
    PodInfo,
    name_key,
    namespaced_key,
    project_node,
    project_owner,
    project_pod,
    uid_key,
)
from relay.enrich.workloads import resolve_workload


class Enrichment(Protocol):
    @property
    def cluster_name(self) -> str: ...

    def pod(self, uid: str) -> PodInfo | None: ...

    def workload(self, pod: PodInfo | None) -> tuple[str, str]: ...

    def node(self, name: str) -> NodeInfo | None: ...

    def ready(self) -> bool: ...


@dataclass
class NoEnrichment:
    """Used when no API server is configured: nothing is added, nothing is waited for."""

    cluster_name: str = ""

    def pod(self, uid: str) -> PodInfo | None:
        return None

    def workload(self, pod: PodInfo | None) -> tuple[str, str]:
        return "", ""

    def node(self, name: str) -> NodeInfo | None:
        return None

    def ready(self) -> bool:
        return True


def label_filter(allowlist: str) -> Callable[[str], bool]:
    """`*` keeps every pod label; otherwise a comma-separated list of label keys."""
    wanted = {k.strip() for k in allowlist.split(",") if k.strip()}
    if "*" in wanted:
        return lambda key: True
    return wanted.__contains__


class KubeEnrichment:
    def __init__(
        self,
        api: client.ApiClient,
        *,
        pod_labels: str = "",
        cluster_name: str = "",
        sync_timeout_seconds: float = 30.0,
        resync_seconds: float = 3600.0,
    ) -> None:
        core, apps, batch = client.CoreV1Api(api), client.AppsV1Api(api), client.BatchV1Api(api)
        self._cluster_name = cluster_name
        self.sync_timeout_seconds = sync_timeout_seconds
        self._started = time.monotonic()
        keep = label_filter(pod_labels)
        self.pods: Informer[PodInfo] = Informer(
            "pods",
            core.list_pod_for_all_namespaces,
            lambda o: project_pod(o, keep),
            uid_key,
            resync_seconds=resync_seconds,
        )
        self.nodes: Informer[NodeInfo] = Informer(
            "nodes", core.list_node, project_node, name_key, resync_seconds=resync_seconds
        )
        self.replicasets: Informer[Owner] = Informer(
            "replicasets",
            apps.list_replica_set_for_all_namespaces,
            project_owner,
            namespaced_key,
            resync_seconds=resync_seconds,
        )
        self.jobs: Informer[Owner] = Informer(
            "jobs",
            batch.list_job_for_all_namespaces,
            project_owner,
            namespaced_key,
            resync_seconds=resync_seconds,
        )
        self.informers: tuple[Informer[PodInfo] | Informer[NodeInfo] | Informer[Owner], ...] = (
            self.pods,
            self.nodes,
            self.replicasets,
            self.jobs,
        )

    @property
    def cluster_name(self) -> str:
        if self._cluster_name:
            return self._cluster_name
        return next((n.cluster_name for n in self.nodes.items.values() if n.cluster_name), "")

    def start(self) -> None:
        self._started = time.monotonic()
        for informer in self.informers:
            informer.start()

    def stop(self) -> None:
        for informer in self.informers:
            informer.stop()

    def synced(self) -> bool:
        return all(informer.synced.is_set() for informer in self.informers)

    def ready(self) -> bool:
        """Ready once every cache has listed once, or after the bounded wait for that."""
        return self.synced() or time.monotonic() - self._started > self.sync_timeout_seconds

    def pod(self, uid: str) -> PodInfo | None:
        return self.pods.items.get(uid)

    def workload(self, pod: PodInfo | None) -> tuple[str, str]:
        if pod is None:
            return "", ""
        return resolve_workload(pod, self.replicasets.items, self.jobs.items)

    def node(self, name: str) -> NodeInfo | None:
        return self.nodes.items.get(name)
