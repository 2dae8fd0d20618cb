"""Hand-made protobuf wire bytes for hostile clients: what no well-behaved encoder makes."""

from __future__ import annotations

METRICS_PODS = 7  # Metrics.pods
WIRE_LENGTH = 2


def varint(value: int) -> bytes:
    out = bytearray()
    while True:
        low, value = value & 0x7F, value >> 7
        if value:
            out.append(low | 0x80)
        else:
            out.append(low)
            return bytes(out)


def field_bytes(number: int, payload: bytes) -> bytes:
    """One length-delimited field."""
    return varint(number << 3 | WIRE_LENGTH) + varint(len(payload)) + payload


def repeated_empty_pods(count: int) -> bytes:
    """`count` empty entries of Metrics.pods: two bytes each on the wire."""
    return field_bytes(METRICS_PODS, b"") * count
