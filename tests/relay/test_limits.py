"""Per-report caps and the one rule for strings: over-limit content is cut and counted by
field, the rest kept; every string field of the protocol is covered."""

from __future__ import annotations

import gzip
from collections.abc import Iterator

import pytest
from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message import Message

from kubensage_api.telemetry import telemetry_pb2 as tm
from relay.ingest.decode import DecodeLimits, MessageDecoder
from relay.ingest.limits import (
    OWN_BOUNDS,
    ReportLimits,
    enforce_limits,
    is_map,
    short_name,
)
from tests.support.reports import container, full_report, pod, report


def test_excess_pods_containers_and_labels_are_cut_and_counted() -> None:
    pods = [
        pod(
            f"p{i}",
            containers=[container(f"c{j}", f"id{i}-{j}") for j in range(5)],
            labels={f"k{n:03d}": "v" for n in range(10)},
        )
        for i in range(7)
    ]
    r = report(pods=pods)
    limits = ReportLimits(max_pods=4, max_containers_per_pod=3, max_labels=6, max_containers=10)
    cuts = enforce_limits(r, limits)
    # 3 pods over the cap; 2 containers in each of 4 pods; the 4th pod has room for 1 of 3
    # containers left in the report (10 = 3 + 3 + 3 + 1); 4 labels in each of 4 pods
    assert cuts == {"Metrics.pods": 3, "Pod.containers": 4 * 2 + 2, "Pod.labels": 16}
    assert [p.name for p in r.pods] == ["p0", "p1", "p2", "p3"]
    assert [len(p.containers) for p in r.pods] == [3, 3, 3, 1]
    assert sorted(r.pods[0].labels) == [f"k{n:03d}" for n in range(6)]


def test_long_values_are_cut_on_a_character_boundary() -> None:
    r = report(
        pods=[pod("é" * 600, labels={"team": "ü" * 1000}, containers=[container("app", "c1")])]
    )
    cuts = enforce_limits(r, ReportLimits(max_label_value_bytes=101))
    assert cuts == {"Pod.name": 1, "Pod.uid": 1, "Pod.labels": 1, "Pod.sandbox_id": 1}
    assert r.pods[0].name == "é" * 50  # 100 bytes: the 101st byte would split a character
    assert len(r.pods[0].uid.encode()) <= 101
    assert r.pods[0].labels["team"] == "ü" * 50


def test_a_full_node_within_the_defaults_is_untouched() -> None:
    r = full_report(containers=110)
    r.pods[0].annotations.clear()
    before = r.SerializeToString()
    assert enforce_limits(r, ReportLimits()) == {}
    assert r.SerializeToString() == before


# -- every string field of the protocol falls under the rule ----------------------------


def paths_to_strings(root: Descriptor) -> Iterator[tuple[list[FieldDescriptor], FieldDescriptor]]:
    """(message fields from `root` down to the holder, the string field) for every string
    field reachable from `root`, found from the descriptors alone."""
    pending: list[tuple[Descriptor, list[FieldDescriptor]]] = [(root, [])]
    seen: set[str] = set()
    while pending:
        descriptor, path = pending.pop()
        if descriptor.full_name in seen:
            continue
        seen.add(descriptor.full_name)
        for field in descriptor.fields:
            if field.type == FieldDescriptor.TYPE_STRING:
                yield path, field
            elif field.message_type is not None:
                pending.append((field.message_type, [*path, field]))


def holder_at(message: Message, path: list[FieldDescriptor]) -> Message:
    for step in path[:-1] if path and is_map(path[-1]) else path:
        value = getattr(message, step.name)
        message = value.add() if step.is_repeated else value
    return message


def set_long(message: Message, path: list[FieldDescriptor], field: FieldDescriptor, text: str):  # type: ignore[no-untyped-def]
    """Put `text` into `field` at `path`; return the field name cuts are counted under."""
    holder = holder_at(message, path)
    if path and is_map(path[-1]):  # a map's key or value
        mapping = getattr(holder, path[-1].name)
        if field.name == "key":
            value_field = path[-1].message_type.fields_by_name["value"]
            mapping[text] = "v" if value_field.type == FieldDescriptor.TYPE_STRING else 1
        else:
            mapping["k"] = text
        return short_name(path[-1])
    if field.is_repeated:
        getattr(holder, field.name).append(text)
    else:
        setattr(holder, field.name, text)
    return short_name(field)


def read_back(message: Message, path: list[FieldDescriptor], field: FieldDescriptor) -> str:
    holder = message
    steps = path[:-1] if path and is_map(path[-1]) else path
    for step in steps:
        value = getattr(holder, step.name)
        holder = value[0] if step.is_repeated else value
    if path and is_map(path[-1]):
        mapping = getattr(holder, path[-1].name)
        (key,) = mapping
        return str(key if field.name == "key" else mapping[key])
    value = getattr(holder, field.name)
    return str(value[0] if field.is_repeated else value)


STRING_FIELDS = list(paths_to_strings(tm.AgentMessage.DESCRIPTOR))


def test_the_walk_reaches_nested_strings_maps_and_lists() -> None:
    found = {short_name(f) for _, f in STRING_FIELDS}
    assert {"Node.kernel_version", "Pod.ips", "BlockIo.device", "Hello.node_name"} <= found
    assert {"Container.LabelsEntry.key", "Node.MeminfoEntry.key"} <= found
    assert len(found) >= 50


@pytest.mark.parametrize(
    ("path", "field"), STRING_FIELDS, ids=[short_name(f) for _, f in STRING_FIELDS]
)
def test_every_string_field_is_cut_to_its_bound_and_counted(
    path: list[FieldDescriptor], field: FieldDescriptor
) -> None:
    limits = DecodeLimits(report=ReportLimits(max_label_value_bytes=64))
    bound = OWN_BOUNDS.get(short_name(field), 64)
    message = tm.AgentMessage()
    counted_as = set_long(message, path, field, "ж" * 3000)  # 6000 bytes
    decoded = MessageDecoder(limits).decode(gzip.compress(message.SerializeToString()))
    if counted_as == "Pod.annotations":  # never kept at all
        assert not decoded.message.report.pods[0].annotations
        return
    kept = read_back(decoded.message, path, field)
    assert kept == "ж" * (bound // 2)
    assert decoded.cuts == {counted_as: 1}


def test_exempt_strings_are_few_and_still_bounded() -> None:
    assert set(OWN_BOUNDS) == {"CheckResult.output"}
    assert all(0 < bound <= 64 * 1024 for bound in OWN_BOUNDS.values())
