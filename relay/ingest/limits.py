"""Caps on what one report may hold, so a buggy or hostile agent cannot grow the relay.

Over-limit content is cut, not refused: the rest of the report is still good data.
Every cut is counted by what was cut.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import MutableMapping
from dataclasses import dataclass

from kubensage_api.telemetry import telemetry_pb2 as tm


@dataclass(frozen=True)
class ReportLimits:
    max_pods: int = 1000
    max_containers_per_pod: int = 64
    max_labels: int = 128
    max_label_value_bytes: int = 1024
    max_interfaces: int = 256


UTF8_MAX_BYTES_PER_CHAR = 4


def _cut(text: str, max_bytes: int) -> tuple[str, bool]:
    # every report passes through here: most values are provably short without encoding
    if len(text) * UTF8_MAX_BYTES_PER_CHAR <= max_bytes:
        return text, False
    raw = text.encode()
    if len(raw) <= max_bytes:
        return text, False
    return raw[:max_bytes].decode(errors="ignore"), True


def _cut_labels(labels: MutableMapping[str, str], limits: ReportLimits, cuts: Counter[str]) -> None:
    if len(labels) > limits.max_labels:
        for key in sorted(labels)[limits.max_labels :]:
            del labels[key]
        cuts["labels"] += 1
    longest = max(map(len, labels.values()), default=0)
    if longest * UTF8_MAX_BYTES_PER_CHAR <= limits.max_label_value_bytes:
        return
    for key, value in list(labels.items()):
        short, was_cut = _cut(value, limits.max_label_value_bytes)
        if was_cut:
            labels[key] = short
            cuts["label_values"] += 1


def _cut_fields(
    message: tm.Pod | tm.Container,
    fields: tuple[str, ...],
    limits: ReportLimits,
    cuts: Counter[str],
) -> None:
    for field in fields:
        short, was_cut = _cut(getattr(message, field), limits.max_label_value_bytes)
        if was_cut:
            setattr(message, field, short)
            cuts["label_values"] += 1


def enforce_limits(report: tm.Metrics, limits: ReportLimits) -> Counter[str]:
    """Cut `report` in place to `limits`; return how many cuts of each kind were made.

    Annotations are dropped outright: the relay exposes none, and they can be large.
    """
    cuts: Counter[str] = Counter()
    if len(report.pods) > limits.max_pods:
        del report.pods[limits.max_pods :]
        cuts["pods"] += 1
    if len(report.node.interfaces) > limits.max_interfaces:
        del report.node.interfaces[limits.max_interfaces :]
        cuts["interfaces"] += 1
    short = limits.max_label_value_bytes // UTF8_MAX_BYTES_PER_CHAR  # surely within the cap
    for pod in report.pods:
        if pod.annotations:
            pod.ClearField("annotations")
        if len(pod.name) > short or len(pod.namespace) > short or len(pod.uid) > short:
            _cut_fields(pod, ("name", "namespace", "uid"), limits, cuts)
        labels = pod.labels
        if labels and (len(labels) > limits.max_labels or max(map(len, labels.values())) > short):
            _cut_labels(labels, limits, cuts)
        if len(pod.network) > limits.max_interfaces:
            del pod.network[limits.max_interfaces :]
            cuts["interfaces"] += 1
        if len(pod.containers) > limits.max_containers_per_pod:
            del pod.containers[limits.max_containers_per_pod :]
            cuts["containers"] += 1
        for container in pod.containers:
            if (
                len(container.name) > short
                or len(container.image) > short
                or len(container.image_ref) > short
                or len(container.id) > short
            ):
                _cut_fields(container, ("name", "image", "image_ref", "id"), limits, cuts)
            labels = container.labels
            if labels and (
                len(labels) > limits.max_labels or max(map(len, labels.values())) > short
            ):
                _cut_labels(labels, limits, cuts)
    return cuts
