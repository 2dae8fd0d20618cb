"""/proc/net/dev and /proc/<pid>/net/dev: per-interface traffic counters."""

from __future__ import annotations

from typing import NamedTuple

# Columns after "iface:" as the kernel's net/core/net-procfs.c prints them.
COLUMNS = 16


class InterfaceCounters(NamedTuple):
    name: str
    receive_bytes: int
    receive_packets: int
    receive_errors: int
    receive_drops: int
    receive_fifo: int
    receive_frame: int
    receive_compressed: int
    receive_multicast: int
    transmit_bytes: int
    transmit_packets: int
    transmit_errors: int
    transmit_drops: int
    transmit_fifo: int
    transmit_collisions: int
    transmit_carrier: int
    transmit_compressed: int


def parse_net_dev(text: str) -> list[InterfaceCounters]:
    lines = text.splitlines()
    if len(lines) < 2 or "|" not in lines[0]:
        raise ValueError("not a net/dev file: header missing")
    interfaces = []
    for raw in lines[2:]:
        if not raw.strip():
            continue
        name, sep, rest = raw.partition(":")
        values = rest.split()
        if not sep or len(values) < COLUMNS:
            raise ValueError(f"truncated net/dev line {raw!r}")
        try:
            (
                receive_bytes,
                receive_packets,
                receive_errors,
                receive_drops,
                receive_fifo,
                receive_frame,
                receive_compressed,
                receive_multicast,
                transmit_bytes,
                transmit_packets,
                transmit_errors,
                transmit_drops,
                transmit_fifo,
                transmit_collisions,
                transmit_carrier,
                transmit_compressed,
            ) = map(int, values[:COLUMNS])
        except ValueError as exc:
            raise ValueError(f"non-numeric net/dev line {raw!r}") from exc
        interfaces.append(
            InterfaceCounters(
                name=name.strip(),
                receive_bytes=receive_bytes,
                receive_packets=receive_packets,
                receive_errors=receive_errors,
                receive_drops=receive_drops,
                receive_fifo=receive_fifo,
                receive_frame=receive_frame,
                receive_compressed=receive_compressed,
                receive_multicast=receive_multicast,
                transmit_bytes=transmit_bytes,
                transmit_packets=transmit_packets,
                transmit_errors=transmit_errors,
                transmit_drops=transmit_drops,
                transmit_fifo=transmit_fifo,
                transmit_collisions=transmit_collisions,
                transmit_carrier=transmit_carrier,
                transmit_compressed=transmit_compressed,
            )
        )
    return interfaces
