"""Report messages filled from parsed kernel files, shared by the node's and the
containers' collectors (PSI and interface counters have the same shape for both)."""

from __future__ import annotations

import errno
import os

from kubensage_agent.hostfs import read_small
from kubensage_agent.parsers.netdev import InterfaceCounters
from kubensage_agent.parsers.pressure import PressureStats, parse_pressure
from kubensage_api.telemetry import telemetry_pb2 as tm


def fill_pressure(target: tm.Pressure, resource: str, stats: PressureStats) -> None:
    target.resource = resource
    for kind, line in (("some", stats.some), ("full", stats.full)):
        if line is None:
            continue
        out = getattr(target, kind)
        out.total_seconds = line.total_seconds
        out.avg10, out.avg60, out.avg300 = line.avg10, line.avg60, line.avg300


def fill_interface(target: tm.NetworkInterface, counters: InterfaceCounters) -> None:
    """The eight counters every interface reports, pod or node."""
    target.name = counters.name
    target.receive_bytes = counters.receive_bytes
    target.receive_packets = counters.receive_packets
    target.receive_errors = counters.receive_errors
    target.receive_drops = counters.receive_drops
    target.transmit_bytes = counters.transmit_bytes
    target.transmit_packets = counters.transmit_packets
    target.transmit_errors = counters.transmit_errors
    target.transmit_drops = counters.transmit_drops


def read_pressure_file(path: str | os.PathLike[str]) -> PressureStats | None:
    """PSI from one file; None when the kernel has no PSI (file absent or disabled)."""
    try:
        text = read_small(path)
    except FileNotFoundError:
        return None
    except OSError as exc:
        # psi=0 on the kernel command line: the files exist but reads fail with EOPNOTSUPP.
        if exc.errno == errno.EOPNOTSUPP:
            return None
        raise
    return parse_pressure(text)
