"""A readable one-screen summary of a report, for `collect --format text`."""

from __future__ import annotations

from kubensage_api.telemetry import telemetry_pb2 as tm

MIB = 1024 * 1024
# filesystems and disks listed by name before the rest are only counted
LISTED = 4


def _size(value: int) -> str:
    for unit, scale in (("T", 1 << 40), ("G", 1 << 30), ("M", 1 << 20), ("K", 1 << 10)):
        if value >= scale:
            return f"{value / scale:.1f}{unit}"
    return f"{value}B"


def _listing(items: list[str]) -> str:
    shown = ", ".join(items[:LISTED])
    more = len(items) - LISTED
    return f"{shown}, +{more} more" if more > 0 else shown or "none"


def _fullest_first(fs: tm.Filesystem) -> float:
    """Failing ones first, then by the share of space a user cannot have any more."""
    if fs.device_error:
        return -1.0
    return fs.available_bytes / fs.size_bytes if fs.size_bytes else 1.0


def _filesystem(fs: tm.Filesystem) -> str:
    if fs.device_error:
        return f"{fs.mountpoint} error"
    flags = " ro" if fs.read_only else ""
    return f"{fs.mountpoint} {_size(fs.available_bytes)}/{_size(fs.size_bytes)} avail{flags}"


def _disk(disk: tm.Disk) -> str:
    return (
        f"{disk.device} read {_size(disk.read_bytes)} written {_size(disk.written_bytes)} "
        f"busy {disk.io_time_seconds:.0f}s"
    )


def _kernel_lines(node: tm.Node) -> list[str]:
    """The node's kernel figures in three lines, each left out when nothing fed it."""
    lines = []
    if node.filesystems:
        fullest = sorted(node.filesystems, key=_fullest_first)
        lines.append(f"filesystems {_listing([_filesystem(fs) for fs in fullest])}")
    if node.disks:
        lines.append(f"disks {_listing([_disk(d) for d in node.disks])}")
    figures = []
    clock = node.clock
    if clock.HasField("synchronised"):
        figures.append(
            f"clock {'synced' if clock.synchronised else 'unsynced'} "
            f"offset={clock.offset_seconds:+.6f}s maxerror={clock.max_error_seconds:g}s"
        )
    if clock.time_zone:
        figures.append(f"tz={clock.time_zone}")
    fds = node.file_descriptors
    if fds.HasField("allocated"):
        figures.append(f"fds={fds.allocated}/{fds.maximum}")
    if node.conntrack.HasField("entries"):
        figures.append(f"conntrack={node.conntrack.entries}/{node.conntrack.limit}")
    vm = node.vmstat
    if vm.HasField("pgmajfault"):
        figures.append(f"major_faults={vm.pgmajfault}")
    if vm.HasField("oom_kill"):
        figures.append(f"oom_kills={vm.oom_kill}")
    if figures:
        lines.append(" ".join(figures))
    return lines


def _state(container: tm.Container) -> str:
    name = tm.ContainerState.Name(container.state)
    return name.removeprefix("CONTAINER_STATE_")


def render_text(report: tm.Metrics) -> str:
    node = report.node
    mem = node.memory
    lines = [
        f"node {node.name} ({node.os_image}, kernel {node.kernel_release}, {node.architecture}) "
        f"cpus={node.cpu_count} load1={node.load.load1:.2f} "
        f"mem_available={mem.available_bytes // MIB}MiB/{mem.total_bytes // MIB}MiB "
        f"psi={','.join(p.resource for p in node.pressure) or 'none'}",
        *_kernel_lines(node),
    ]
    runtime = report.runtime
    lines.append(f"runtime {runtime.name or 'none'} {runtime.version} {runtime.endpoint}".rstrip())
    header = (
        f"{'NAMESPACE':<16} {'POD':<28} {'CONTAINER':<20} {'STATE':<8} "
        f"{'CPU(cores)':>10} {'WSET(MiB)':>10}"
    )
    lines.append(header)
    for pod in sorted(report.pods, key=lambda p: (p.namespace, p.name)):
        for container in sorted(pod.containers, key=lambda c: c.name):
            cores = (
                f"{container.cpu.usage_cores:.3f}" if container.cpu.HasField("usage_cores") else "-"
            )
            wset = (
                f"{container.memory.working_set_bytes / MIB:.1f}"
                if container.memory.HasField("working_set_bytes")
                else "-"
            )
            lines.append(
                f"{pod.namespace:<16} {pod.name:<28} {container.name:<20} "
                f"{_state(container):<8} {cores:>10} {wset:>10}"
            )
    return "\n".join(lines)
