"""Messages built to exhaust the relay: compressed and plain repeated-field bombs,
unknown-field floods, huge strings in every field, per-node floods of pods.

For each: the attacker's stream ends with INVALID_ARGUMENT (or its report is cut and
counted), the relay's peak RSS stays under PEAK_RSS_BOUND_MIB, and the good agent on
another node keeps being acknowledged and keeps its series while the attack runs.
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable

import grpc
import pytest
from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import Message

from kubensage_api.telemetry import telemetry_pb2 as tm
from kubensage_lab.processes import RelayProcess
from relay.ingest.limits import is_map, short_name
from tests.hostile.conftest import assert_unharmed, during_attack
from tests.support.hostile import (
    GoodAgent,
    attack,
    field_bytes,
    hello_bytes,
    node_lines,
    repeated_empty_pods,
    report_bytes,
    report_envelope,
    sample,
    scrape,
    varint,
)
from tests.support.reports import report

MAX_LABEL_VALUE_BYTES = 1024  # the relay's default

# Metrics fields: sequence 2, node 5, pods 7; Pod: containers 13, labels 8;
# Container: block_io 19; Node: meminfo 26 (a map); an entry is two bytes when empty.
POD_WITH = {
    "containers": lambda n: field_bytes(13, b"") * n,
    "labels": lambda n: b"".join(field_bytes(8, field_bytes(1, varint(i))) for i in range(n)),
}


def metrics_prefix(node: str, agent_id: str, sequence: int) -> bytes:
    head = tm.Metrics(agent_id=agent_id, sequence=sequence)
    head.node.name = node
    return head.SerializeToString()


def bomb(kind: str, entries: int) -> bytes:
    prefix = metrics_prefix("evil-1", "evil-agent", 1)
    if kind == "pods":
        body = repeated_empty_pods(entries)
    elif kind in POD_WITH:
        body = field_bytes(7, POD_WITH[kind](entries))
    elif kind == "block_io":
        body = field_bytes(7, field_bytes(13, field_bytes(19, b"") * entries))
    else:  # a map of the node, distinct keys
        keys = b"".join(field_bytes(26, field_bytes(1, varint(i))) for i in range(entries))
        body = field_bytes(5, keys)
    return report_envelope(prefix + body)


def refused(answer_code: grpc.StatusCode, details: str, *reasons: str) -> bool:
    return answer_code == grpc.StatusCode.INVALID_ARGUMENT and details.split(":", 1)[0] in reasons


def unknown_field_flood() -> bytes:
    flood = (varint(900 << 3) + b"\x01") * 200_000
    return report_envelope(metrics_prefix("evil-1", "evil", 1) + flood)


# name -> (message, sent gzip-compressed, the reasons the relay may give)
BOMBS: dict[str, tuple[Callable[[], bytes], bool, tuple[str, ...]]] = {
    # 6 MB of empty pods, ~6 KB on the wire: refused while inflating
    "gzip-empty-pods": (
        lambda: report_envelope(repeated_empty_pods(3_000_000)),
        True,
        ("too_large", "compression_ratio"),
    ),
    # within the message size, over the entry budget: refused by the wire scan
    **{
        kind: (lambda kind=kind: bomb(kind, 100_000), False, ("too_many_entries",))  # type: ignore[misc]
        for kind in ("pods", "containers", "labels", "block_io", "meminfo")
    },
    "unknown-fields": (unknown_field_flood, False, ("unknown_fields",)),
}


@pytest.mark.parametrize("name", BOMBS)
def test_bombs_are_refused_before_they_are_parsed(
    plain_relay: RelayProcess, good_agent: GoodAgent, name: str
) -> None:
    make, compressed, reasons = BOMBS[name]
    payload = make()
    answer = during_attack(
        good_agent,
        lambda: attack(
            plain_relay.address, [hello_bytes("evil-1", "evil"), payload], gzip=compressed
        ),
    )
    assert refused(answer.code, answer.details, *reasons), answer
    assert answer.acks == []
    assert_unharmed(plain_relay, good_agent)


def test_an_oversized_message_is_refused_by_grpc(
    plain_relay: RelayProcess, good_agent: GoodAgent
) -> None:
    big = report(node="evil-1", agent_id="evil")
    big.node.hostname = "h" * (3 << 20)
    answer = attack(plain_relay.address, [hello_bytes("evil-1", "evil"), report_bytes(big)])
    assert answer.code == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert_unharmed(plain_relay, good_agent)


# -- accepted, but bounded: strings cut, floods cut ------------------------------------


def fill_every_string(message: Message, text: Callable[[], str], skip: frozenset[str]) -> None:
    """Set every string field (and one map entry with string key/value) below `message`."""
    for field in message.DESCRIPTOR.fields:
        if short_name(field) in skip:
            continue
        value = getattr(message, field.name)
        if is_map(field):
            value_field = field.message_type.fields_by_name["value"]
            if value_field.type == FieldDescriptor.TYPE_STRING:
                value[text()] = text()
            elif value_field.message_type is None:
                value[text()] = 1
        elif field.type == FieldDescriptor.TYPE_STRING:
            if field.is_repeated:
                value.append(text())
            else:
                setattr(message, field.name, text())
        elif field.message_type is not None:
            fill_every_string(value.add() if field.is_repeated else value, text, skip)


IDENTITY = frozenset({"Metrics.agent_id", "Node.name"})


def send_and_scrape(relay: RelayProcess, evil: tm.Metrics) -> str:
    """Send one report as its node's agent; it must be acknowledged. The scrape after it."""
    evil.sequence = 1
    answer = attack(
        relay.address,
        [hello_bytes(evil.node.name, evil.agent_id), report_bytes(evil)],
        gzip=True,
    )
    assert answer.code == grpc.StatusCode.OK and answer.acks == [1], answer
    return scrape(relay.metrics_url)


def test_huge_strings_in_every_field_are_cut_and_the_scrape_stays_bounded(
    plain_relay: RelayProcess, good_agent: GoodAgent
) -> None:
    evil = report(node="evil-strings", agent_id="evil", pods=[])
    rng = random.Random(7)
    fill_every_string(evil, lambda: rng.randbytes(3000).hex(), IDENTITY)  # 6 KB, incompressible
    exposition = send_and_scrape(plain_relay, evil)
    lines = node_lines(exposition, "evil-strings")
    assert lines, "the report was accepted and is served"
    longest = max(len(v) for line in lines for v in re.findall(r'="([^"]*)"', line))
    assert longest <= MAX_LABEL_VALUE_BYTES
    # bounded by the series it has, not by the 6 KB strings it sent
    assert len("\n".join(lines)) <= len(lines) * 24 * (MAX_LABEL_VALUE_BYTES + 64)
    cut = sample(
        exposition, "kubensage_relay_report_truncations_total", ['what="Node.kernel_version"']
    )
    assert cut is not None and cut >= 1
    assert_unharmed(plain_relay, good_agent)


def test_a_node_reporting_thousands_of_pods_is_cut_to_the_caps(
    plain_relay: RelayProcess, good_agent: GoodAgent
) -> None:
    flood = report(node="evil-flood", agent_id="evil-flood", pods=[])
    for i in range(3000):
        pod = flood.pods.add(name=f"p{i}", namespace="flood", uid=f"u{i}", sandbox_id=f"s{i}")
        for j in range(3):
            c = pod.containers.add(name=f"c{j}", id=f"{i}-{j}")
            c.cpu.usage_seconds_total = 1.0
    exposition = send_and_scrape(plain_relay, flood)
    pods = set(
        re.findall(
            r'kubensage_container_cpu_usage_seconds_total\{[^}]*node="evil-flood"[^}]*pod="([^"]+)"',
            exposition,
        )
    )
    assert 0 < len(pods) <= 110
    cut = sample(exposition, "kubensage_relay_report_truncations_total", ['what="Metrics.pods"'])
    assert cut == 3000 - 110
    assert_unharmed(plain_relay, good_agent)


def test_decode_errors_are_counted_by_reason_and_logged_once_per_peer(
    plain_relay: RelayProcess, good_agent: GoodAgent
) -> None:
    for _ in range(5):
        attack(plain_relay.address, [hello_bytes("evil-1", "evil"), bomb("pods", 40_000)])
    exposition = scrape(plain_relay.metrics_url)
    counted = sample(
        exposition, "kubensage_relay_decode_errors_total", ['reason="too_many_entries"']
    )
    assert counted is not None and counted >= 5
    logged = [
        line
        for line in plain_relay.service.log().splitlines()
        if "refused a message from ipv4:127.0.0.1" in line
    ]
    assert len(logged) == 1, logged
    assert "Traceback" not in plain_relay.service.log()
    assert_unharmed(plain_relay, good_agent)
