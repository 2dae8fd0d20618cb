"""/proc/net/dev and /proc/<pid>/net/dev: per-interface traffic counters."""

from __future__ import annotations

from dataclasses import dataclass

# Column order after "iface:" as documented in the kernel's net/core/net-procfs.c.
RECEIVE_COLUMNS = 8
COLUMNS = 16


@dataclass(frozen=True)
class InterfaceCounters:
    name: str
    receive_bytes: int
    receive_packets: int
    receive_errors: int
    receive_drops: int
    transmit_bytes: int
    transmit_packets: int
    transmit_errors: int
    transmit_drops: int


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
            numbers = [int(v) for v in values[:COLUMNS]]
        except ValueError as exc:
            raise ValueError(f"non-numeric net/dev line {raw!r}") from exc
        rx, tx = numbers[:RECEIVE_COLUMNS], numbers[RECEIVE_COLUMNS:]
        interfaces.append(
            InterfaceCounters(
                name=name.strip(),
                receive_bytes=rx[0],
                receive_packets=rx[1],
                receive_errors=rx[2],
                receive_drops=rx[3],
                transmit_bytes=tx[0],
                transmit_packets=tx[1],
                transmit_errors=tx[2],
                transmit_drops=tx[3],
            )
        )
    return interfaces
