"""Which pod and container a series belongs to when the runtime still lists old attempts.

The kubelet keeps the last dead container of each name and old sandboxes until they
are collected; exposing all of them would give one key several values. The newest
attempt wins, so after a restart the new container's counter is the series and the
old one is gone.
"""

from __future__ import annotations

from collections.abc import Iterable

from kubensage_api.telemetry import telemetry_pb2 as tm


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
