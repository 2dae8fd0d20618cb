"""A readable one-screen summary of a report, for `collect --format text`."""

from __future__ import annotations

from kubensage_api.telemetry import telemetry_pb2 as tm

MIB = 1024 * 1024


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
