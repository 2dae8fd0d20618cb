"""A readable one-screen summary of a report, for `collect --format text`."""

from __future__ import annotations

from typing import Literal

from kubensage_api.telemetry import telemetry_pb2 as tm

MIB = 1024 * 1024


def _state(container: tm.Container) -> str:
    name = tm.ContainerState.Name(container.state)
    return name.removeprefix("CONTAINER_STATE_")


def _mib(memory: tm.ContainerMemory, field: Literal["working_set_bytes", "cache_bytes"]) -> str:
    return f"{getattr(memory, field) / MIB:.1f}" if memory.HasField(field) else "-"


def _throttled(cpu: tm.ContainerCpu) -> str:
    """Share of CFS periods in which the container ran out of quota, since it started."""
    if not cpu.HasField("cfs_periods_total") or cpu.cfs_periods_total == 0:
        return "-"
    return f"{cpu.cfs_throttled_periods_total / cpu.cfs_periods_total:.0%}"


def render_text(report: tm.Metrics) -> str:
    node = report.node
    mem = node.memory
    lines = [
        f"node {node.name} ({node.os_image}, kernel {node.kernel_release}, {node.architecture}) "
        f"cpus={node.cpu_count} load1={node.load.load1:.2f} "
        f"mem_available={mem.available_bytes // MIB}MiB/{mem.total_bytes // MIB}MiB "
        f"psi={','.join(p.resource for p in node.pressure) or 'none'}",
    ]
    runtime = report.runtime
    lines.append(f"runtime {runtime.name or 'none'} {runtime.version} {runtime.endpoint}".rstrip())
    header = (
        f"{'NAMESPACE':<16} {'POD':<28} {'CONTAINER':<20} {'STATE':<8} "
        f"{'CPU(cores)':>10} {'WSET(MiB)':>10} {'CACHE(MiB)':>10} {'THROTTLED':>9} {'OOM':>4}"
    )
    lines.append(header)
    for pod in sorted(report.pods, key=lambda p: (p.namespace, p.name)):
        for container in sorted(pod.containers, key=lambda c: c.name):
            cpu, memory = container.cpu, container.memory
            cores = f"{cpu.usage_cores:.3f}" if cpu.HasField("usage_cores") else "-"
            oom = str(memory.oom_kills) if memory.HasField("oom_kills") else "-"
            lines.append(
                f"{pod.namespace:<16} {pod.name:<28} {container.name:<20} "
                f"{_state(container):<8} {cores:>10} {_mib(memory, 'working_set_bytes'):>10} "
                f"{_mib(memory, 'cache_bytes'):>10} {_throttled(cpu):>9} {oom:>4}"
            )
    return "\n".join(lines)
