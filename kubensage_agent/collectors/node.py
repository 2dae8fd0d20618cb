"""The node's own figures: CPU, memory, load, PSI, network, uptime and identity."""

from __future__ import annotations

import os
import socket
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import psutil

from kubensage_agent.collectors.errors import CollectorErrors
from kubensage_agent.hostfs import HostPaths, read_small
from kubensage_agent.parsers.loadavg import parse_loadavg
from kubensage_agent.parsers.netdev import InterfaceCounters, parse_net_dev
from kubensage_agent.parsers.osrelease import parse_os_release
from kubensage_agent.parsers.pressure import PressureStats, parse_pressure
from kubensage_agent.parsers.uptime import parse_uptime
from kubensage_api.telemetry import telemetry_pb2 as tm

PSI_RESOURCES = ("cpu", "memory", "io", "irq")
NANOS = 1_000_000_000
NodeStep = Callable[[HostPaths, tm.Node], None]


def fill_pressure(target: tm.Pressure, resource: str, stats: PressureStats) -> None:
    target.resource = resource
    for kind, line in (("some", stats.some), ("full", stats.full)):
        if line is None:
            continue
        out = getattr(target, kind)
        out.total_seconds = line.total_seconds
        out.avg10, out.avg60, out.avg300 = line.avg10, line.avg60, line.avg300


def fill_interface(target: tm.NetworkInterface, counters: InterfaceCounters) -> None:
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
        if exc.errno == 95:
            return None
        raise
    return parse_pressure(text)


def _cpu(paths: HostPaths, node: tm.Node) -> None:
    times = psutil.cpu_times()
    for mode, seconds in times._asdict().items():
        node.cpu_seconds_by_mode[mode] = float(seconds)
    node.cpu_count = psutil.cpu_count(logical=True) or 0
    node.context_switches = psutil.cpu_stats().ctx_switches


def _memory(paths: HostPaths, node: tm.Node) -> None:
    mem = psutil.virtual_memory()
    swap = psutil.swap_memory()
    out = node.memory
    out.total_bytes, out.available_bytes, out.free_bytes = mem.total, mem.available, mem.free
    out.buffers_bytes, out.cached_bytes = mem.buffers, mem.cached
    out.swap_total_bytes, out.swap_free_bytes = swap.total, swap.free


def _loadavg(paths: HostPaths, node: tm.Node) -> None:
    node.load.load1, node.load.load5, node.load.load15 = parse_loadavg(
        paths.proc("loadavg").read_text()
    )


def _pressure(paths: HostPaths, node: tm.Node) -> None:
    for resource in PSI_RESOURCES:
        stats = read_pressure_file(paths.proc("pressure", resource))
        if stats is not None:
            fill_pressure(node.pressure.add(), resource, stats)


def _netdev(paths: HostPaths, node: tm.Node) -> None:
    for counters in parse_net_dev(paths.proc("net", "dev").read_text()):
        fill_interface(node.interfaces.add(), counters)


def _uptime(paths: HostPaths, node: tm.Node) -> None:
    node.uptime_seconds = parse_uptime(paths.proc("uptime").read_text())
    node.boot_time_unix_nanos = int(psutil.boot_time() * NANOS)


def _identity(paths: HostPaths, node: tm.Node) -> None:
    uname = os.uname()
    node.hostname = socket.gethostname()
    node.kernel_release, node.kernel_version, node.architecture = (
        uname.release,
        uname.version,
        uname.machine,
    )
    for candidate in ("/etc/os-release", "/usr/lib/os-release"):
        if paths.path(candidate).exists():
            release = parse_os_release(paths.read(candidate))
            node.os_name = release.get("NAME", "")
            node.os_version = release.get("VERSION_ID", "")
            node.os_image = release.get("PRETTY_NAME", node.os_name)
            return
    raise FileNotFoundError("no os-release file under the host root")


def _addresses(paths: HostPaths, node: tm.Node) -> None:
    for name, addrs in sorted(psutil.net_if_addrs().items()):
        if name == "lo":
            continue
        for addr in addrs:
            if addr.family in (socket.AF_INET, socket.AF_INET6):
                node.addresses.append(addr.address.split("%", 1)[0])


NODE_STEPS: dict[str, NodeStep] = {
    "cpu": _cpu,
    "memory": _memory,
    "loadavg": _loadavg,
    "pressure": _pressure,
    "netdev": _netdev,
    "uptime": _uptime,
    "identity": _identity,
    "addresses": _addresses,
}


class NodeCollector:
    def __init__(
        self,
        paths: HostPaths,
        node_name: str,
        errors: CollectorErrors,
        disabled: frozenset[str] = frozenset(),
    ) -> None:
        unknown = disabled - NODE_STEPS.keys()
        if unknown:
            raise ValueError(f"unknown node collectors: {', '.join(sorted(unknown))}")
        self.paths = paths
        self.node_name = node_name
        self.errors = errors
        self.steps = {name: step for name, step in NODE_STEPS.items() if name not in disabled}

    def collect(self) -> tm.Node:
        node = tm.Node(name=self.node_name)
        with _procfs_at(self.paths):
            for name, step in self.steps.items():
                with self.errors.guard(name):
                    step(self.paths, node)
        return node


@contextmanager
def _procfs_at(paths: HostPaths) -> Iterator[None]:
    """Point psutil at the host's /proc for one collection (psutil keeps it in a global)."""
    previous = psutil.PROCFS_PATH
    psutil.PROCFS_PATH = str(paths.proc())
    try:
        yield
    finally:
        psutil.PROCFS_PATH = previous


def default_node_name() -> str:
    return os.environ.get("NODE_NAME") or socket.gethostname()
