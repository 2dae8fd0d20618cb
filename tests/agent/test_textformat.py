"""`collect --format text`: the node's kernel figures in a few compact lines."""

from __future__ import annotations

from kubensage_agent.textformat import render_text
from kubensage_api.telemetry import telemetry_pb2 as tm

GIB = 1 << 30


def report_with_node_figures() -> tm.Metrics:
    report = tm.Metrics()
    node = report.node
    node.name = "node-a"
    for index in range(6):
        node.filesystems.add(
            mountpoint=f"/var/lib/kubelet/pods/{index}/volume",
            size_bytes=GIB,
            available_bytes=GIB,
        )
    node.filesystems.add(mountpoint="/", size_bytes=100 * GIB, available_bytes=4 * GIB)
    node.filesystems.add(mountpoint="/mnt/nfs", device_error=True)
    node.filesystems.add(mountpoint="/boot", size_bytes=GIB, available_bytes=GIB, read_only=True)
    node.disks.add(device="vda", read_bytes=3 * GIB, written_bytes=GIB, io_time_seconds=12.4)
    node.clock.synchronised = True
    node.clock.offset_seconds = -0.0012
    node.clock.max_error_seconds = 0.25
    node.clock.time_zone = "CET"
    node.file_descriptors.allocated, node.file_descriptors.maximum = 1093, 2466170
    node.conntrack.entries, node.conntrack.limit = 12, 262144
    node.vmstat.pgmajfault, node.vmstat.oom_kill = 3662, 1
    return report


def test_filesystems_list_the_failing_and_fullest_first_then_count_the_rest() -> None:
    lines = render_text(report_with_node_figures()).splitlines()
    filesystems = next(line for line in lines if line.startswith("filesystems "))
    assert filesystems.startswith("filesystems /mnt/nfs error, / 4.0G/100.0G avail, ")
    assert filesystems.endswith(", +5 more")


def test_disks_and_kernel_counters_in_one_line_each() -> None:
    lines = render_text(report_with_node_figures()).splitlines()
    assert "disks vda read 3.0G written 1.0G busy 12s" in lines
    assert (
        "clock synced offset=-0.001200s maxerror=0.25s tz=CET fds=1093/2466170 "
        "conntrack=12/262144 major_faults=3662 oom_kills=1"
    ) in lines


def test_figures_not_reported_are_left_out() -> None:
    lines = render_text(tm.Metrics()).splitlines()
    assert not any(line.startswith(("filesystems", "disks", "clock", "fds")) for line in lines)
