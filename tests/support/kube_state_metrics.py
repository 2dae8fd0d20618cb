"""A stand-in for kube-state-metrics: `kube_pod_info` for a given list of pods, served as
kube-state-metrics serves it, on loopback.

The kubernetes-mixin joins cAdvisor series to their node through this series (`* on
(namespace, pod) group_left(node) ... kube_pod_info`); no API server or kube-state-metrics
runs here, so the test that checks those joins serves the one series it needs itself.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from prometheus_client import start_http_server
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector, CollectorRegistry

# kube-state-metrics v2's label set of kube_pod_info
POD_INFO_LABELS = (
    "namespace",
    "pod",
    "uid",
    "host_ip",
    "pod_ip",
    "node",
    "created_by_kind",
    "created_by_name",
    "priority_class",
    "host_network",
)


@dataclass(frozen=True)
class PodInfo:
    namespace: str
    pod: str
    uid: str
    node: str
    host_network: bool


class _PodInfoCollector(Collector):
    def __init__(self, pods: list[PodInfo]) -> None:
        self.pods = pods

    def collect(self) -> Iterator[GaugeMetricFamily]:
        family = GaugeMetricFamily(
            "kube_pod_info", "[STABLE] Information about pod.", labels=POD_INFO_LABELS
        )
        for pod in self.pods:
            family.add_metric(
                [
                    pod.namespace,
                    pod.pod,
                    pod.uid,
                    "127.0.0.1",
                    "127.0.0.1" if pod.host_network else "",
                    pod.node,
                    "<none>",
                    "<none>",
                    "",
                    str(pod.host_network).lower(),
                ],
                1.0,
            )
        yield family


class KubeStateMetrics:
    """Serves `kube_pod_info` for the pods in `pods` (add to it as pods are created) at
    `address` until `stop()`."""

    def __init__(self) -> None:
        self.pods: list[PodInfo] = []
        registry = CollectorRegistry(auto_describe=False)
        registry.register(_PodInfoCollector(self.pods))
        self._server, self._thread = start_http_server(0, "127.0.0.1", registry)

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self._server.server_port}"

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=10)
