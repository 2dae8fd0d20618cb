"""The node's figures that both the native and the node_exporter profile serve, each
with its name in either profile, so help, unit and type are stated once per figure.

Names leave out the profile's prefix (`kubensage_node_`, `node_`). A figure is a
counter when its native name ends in `_total`, else a gauge; a profile may still
type a family otherwise where its own contract says so (node_exporter's vmstat).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from relay.series.rows import node_parts
from relay.series.spec import Family, Kind, Subject
from relay.series.values import (
    info_when,
    nonzero,
    os_release,
    os_release_labels,
    present,
    seconds,
    uname_labels,
)

Extractor = Callable[[Any], float | None]


@dataclass(frozen=True, slots=True)
class Figure:
    field: str  # the protocol's field on the row's part or message
    native: str
    exporter: str
    unit: str
    help: str
    # for figures the field alone does not give: their own extractor and labels
    extractor: Extractor | None = None
    labels: Mapping[str, Callable[[Any], str]] = dataclasses.field(default_factory=dict)

    @property
    def kind(self) -> Kind:
        return Kind.COUNTER if self.native.endswith("_total") else Kind.GAUGE


def declare(
    figures: Iterable[Figure],
    name: Callable[[Figure], str],
    subject: Subject[Any],
    value: Callable[[str], Extractor],
    kind: Kind | None = None,
) -> Iterable[Family[Any]]:
    """One family per figure: `name` picks the profile's name, `value` makes the extractor
    of a field, `kind` overrides the figure's own type."""
    for figure in figures:
        yield Family(
            name(figure),
            kind or figure.kind,
            figure.unit,
            figure.help,
            subject,
            figure.extractor or value(figure.field),
            labels=figure.labels,
        )


def node_field(message: str = "") -> Callable[[str], Extractor]:
    """Extractor maker for a field of the node row's Node, or of one of its messages."""
    if not message:
        return lambda field: lambda c: present(c.node, field)
    return lambda field: lambda c: present(getattr(c.node, message), field)


def load_average(field: str) -> Extractor:
    """LoadAverage's doubles have no presence of their own; the message's stands for them."""
    return lambda c: getattr(c.node.load, field) if c.node.HasField("load") else None


def interfaces_of(node: Subject[Any]) -> Subject[Any]:
    return node.part(
        "node interface",
        "Each network interface of the node's network namespace.",
        node_parts("interfaces"),
        {"device": lambda r: r.item.name},
    )


def filesystems_of(node: Subject[Any]) -> Subject[Any]:
    return node.part(
        "node filesystem",
        "Each mounted filesystem that passes the agent's mount-point and type filters.",
        node_parts("filesystems"),
        {
            "device": lambda r: r.item.device,
            "fstype": lambda r: r.item.fstype,
            "mountpoint": lambda r: r.item.mountpoint,
        },
    )


def disks_of(node: Subject[Any]) -> Subject[Any]:
    return node.part(
        "node disk",
        "Each block device of /proc/diskstats that passes the agent's device filter.",
        node_parts("disks"),
        {"device": lambda r: r.item.device},
    )


# /proc/stat beyond the CPU times
STAT = (
    Figure(
        "context_switches",
        "context_switches_total",
        "context_switches_total",
        "",
        "Context switches since boot.",
    ),
    Figure("forks", "forks_total", "forks_total", "", "Processes and threads created since boot."),
    Figure("interrupts", "interrupts_total", "intr_total", "", "Interrupts serviced since boot."),
    Figure(
        "procs_running", "procs_running", "procs_running", "", "Runnable processes and threads."
    ),
    Figure(
        "procs_blocked",
        "procs_blocked",
        "procs_blocked",
        "",
        "Processes and threads blocked waiting for I/O.",
    ),
)
LOAD = tuple(
    Figure(
        f"load{minutes}", f"load{minutes}", f"load{minutes}", "", f"{minutes}-minute load average."
    )
    for minutes in ("1", "5", "15")
)
# /proc/sys/fs/file-nr
FILE_DESCRIPTORS = (
    Figure(
        "allocated", "file_descriptors_allocated", "filefd_allocated", "", "File handles allocated."
    ),
    Figure(
        "maximum",
        "file_descriptors_maximum",
        "filefd_maximum",
        "",
        "File handles the kernel allows (fs.file-max).",
    ),
)
# /proc/sys/net/netfilter/nf_conntrack_{count,max}
CONNTRACK = (
    Figure(
        "entries",
        "conntrack_entries",
        "nf_conntrack_entries",
        "",
        "Entries in the connection tracking table.",
    ),
    Figure(
        "limit",
        "conntrack_entries_limit",
        "nf_conntrack_entries_limit",
        "",
        "Size limit of the connection tracking table.",
    ),
)
# what the runtime gives for pod interfaces too, and /proc/net/dev for the node's
NETWORK_BASIC = (
    Figure(
        "receive_bytes", "receive_bytes_total", "receive_bytes_total", "bytes", "Bytes received."
    ),
    Figure(
        "receive_packets", "receive_packets_total", "receive_packets_total", "", "Packets received."
    ),
    Figure("receive_errors", "receive_errors_total", "receive_errs_total", "", "Receive errors."),
    Figure(
        "receive_drops",
        "receive_drops_total",
        "receive_drop_total",
        "",
        "Received packets dropped.",
    ),
    Figure(
        "transmit_bytes",
        "transmit_bytes_total",
        "transmit_bytes_total",
        "bytes",
        "Bytes transmitted.",
    ),
    Figure(
        "transmit_packets",
        "transmit_packets_total",
        "transmit_packets_total",
        "",
        "Packets transmitted.",
    ),
    Figure(
        "transmit_errors", "transmit_errors_total", "transmit_errs_total", "", "Transmit errors."
    ),
    Figure(
        "transmit_drops",
        "transmit_drops_total",
        "transmit_drop_total",
        "",
        "Packets dropped before transmission.",
    ),
)
# the remaining /proc/net/dev columns, node interfaces only
NETWORK_DETAIL = (
    Figure(
        "receive_fifo",
        "receive_fifo_total",
        "receive_fifo_total",
        "",
        "Receive FIFO buffer errors.",
    ),
    Figure(
        "receive_frame",
        "receive_frame_total",
        "receive_frame_total",
        "",
        "Receive framing errors (frame, length, overrun, CRC).",
    ),
    Figure(
        "receive_compressed",
        "receive_compressed_total",
        "receive_compressed_total",
        "",
        "Compressed packets received.",
    ),
    Figure(
        "receive_multicast",
        "receive_multicast_total",
        "receive_multicast_total",
        "",
        "Multicast packets received.",
    ),
    Figure(
        "transmit_fifo",
        "transmit_fifo_total",
        "transmit_fifo_total",
        "",
        "Transmit FIFO buffer errors.",
    ),
    Figure(
        "transmit_collisions",
        "transmit_collisions_total",
        "transmit_colls_total",
        "",
        "Collisions while transmitting.",
    ),
    Figure(
        "transmit_carrier",
        "transmit_carrier_total",
        "transmit_carrier_total",
        "",
        "Carrier losses while transmitting (carrier, aborted, heartbeat, window).",
    ),
    Figure(
        "transmit_compressed",
        "transmit_compressed_total",
        "transmit_compressed_total",
        "",
        "Compressed packets transmitted.",
    ),
)
# statfs of one mount; read-only and statfs errors are declared by each profile
FILESYSTEM = (
    Figure(
        "size_bytes",
        "filesystem_size_bytes",
        "filesystem_size_bytes",
        "bytes",
        "Size of the filesystem (blocks times block size).",
    ),
    Figure(
        "free_bytes",
        "filesystem_free_bytes",
        "filesystem_free_bytes",
        "bytes",
        "Free space, the part reserved for root included.",
    ),
    Figure(
        "available_bytes",
        "filesystem_available_bytes",
        "filesystem_avail_bytes",
        "bytes",
        "Free space unprivileged users may fill.",
    ),
    Figure("files", "filesystem_files", "filesystem_files", "", "Inodes of the filesystem."),
    Figure("files_free", "filesystem_files_free", "filesystem_files_free", "", "Free inodes."),
)
# /proc/diskstats (the kernel's Documentation/admin-guide/iostats.rst)
DISK = (
    Figure(
        "reads_completed",
        "disk_reads_completed_total",
        "disk_reads_completed_total",
        "",
        "Reads completed.",
    ),
    Figure(
        "reads_merged",
        "disk_reads_merged_total",
        "disk_reads_merged_total",
        "",
        "Reads merged with an adjacent one before being issued.",
    ),
    Figure("read_bytes", "disk_read_bytes_total", "disk_read_bytes_total", "bytes", "Bytes read."),
    Figure(
        "read_time_seconds",
        "disk_read_time_seconds_total",
        "disk_read_time_seconds_total",
        "seconds",
        "Time reads took, summed over reads.",
    ),
    Figure(
        "writes_completed",
        "disk_writes_completed_total",
        "disk_writes_completed_total",
        "",
        "Writes completed.",
    ),
    Figure(
        "writes_merged",
        "disk_writes_merged_total",
        "disk_writes_merged_total",
        "",
        "Writes merged with an adjacent one before being issued.",
    ),
    Figure(
        "written_bytes",
        "disk_written_bytes_total",
        "disk_written_bytes_total",
        "bytes",
        "Bytes written.",
    ),
    Figure(
        "write_time_seconds",
        "disk_write_time_seconds_total",
        "disk_write_time_seconds_total",
        "seconds",
        "Time writes took, summed over writes.",
    ),
    Figure("io_now", "disk_io_now", "disk_io_now", "", "I/Os in flight."),
    Figure(
        "io_time_seconds",
        "disk_io_time_seconds_total",
        "disk_io_time_seconds_total",
        "seconds",
        "Time the device had I/Os in flight (its utilisation).",
    ),
    Figure(
        "io_time_weighted_seconds",
        "disk_io_time_weighted_seconds_total",
        "disk_io_time_weighted_seconds_total",
        "seconds",
        "Time spent on I/O times the I/Os in flight (its saturation).",
    ),
    Figure(
        "discards_completed",
        "disk_discards_completed_total",
        "disk_discards_completed_total",
        "",
        "Discards completed.",
    ),
    Figure(
        "discards_merged",
        "disk_discards_merged_total",
        "disk_discards_merged_total",
        "",
        "Discards merged with an adjacent one before being issued.",
    ),
    Figure(
        "discarded_sectors",
        "disk_discarded_sectors_total",
        "disk_discarded_sectors_total",
        "",
        "Sectors (512 bytes) discarded.",
    ),
    Figure(
        "discard_time_seconds",
        "disk_discard_time_seconds_total",
        "disk_discard_time_seconds_total",
        "seconds",
        "Time discards took, summed over discards.",
    ),
    Figure(
        "flush_requests",
        "disk_flush_requests_total",
        "disk_flush_requests_total",
        "",
        "Flush requests completed.",
    ),
    Figure(
        "flush_time_seconds",
        "disk_flush_time_seconds_total",
        "disk_flush_requests_time_seconds_total",
        "seconds",
        "Time flush requests took, summed over requests.",
    ),
)
# /proc/vmstat: counters since boot
VMSTAT = (
    Figure(
        "pgfault", "vmstat_pgfault_total", "vmstat_pgfault", "", "Page faults, minor and major."
    ),
    Figure(
        "pgmajfault",
        "vmstat_pgmajfault_total",
        "vmstat_pgmajfault",
        "",
        "Major page faults (the page had to be read from disk).",
    ),
    Figure("pgpgin", "vmstat_pgpgin_total", "vmstat_pgpgin", "", "Kibibytes paged in from disk."),
    Figure("pgpgout", "vmstat_pgpgout_total", "vmstat_pgpgout", "", "Kibibytes paged out to disk."),
    Figure("pswpin", "vmstat_pswpin_total", "vmstat_pswpin", "", "Pages swapped in."),
    Figure("pswpout", "vmstat_pswpout_total", "vmstat_pswpout", "", "Pages swapped out."),
    Figure(
        "oom_kill",
        "vmstat_oom_kill_total",
        "vmstat_oom_kill",
        "",
        "Processes the OOM killer ended.",
    ),
)
# adjtimex(2); the time and the time zone are declared by each profile
CLOCK = (
    Figure(
        "synchronised",
        "clock_synchronised",
        "timex_sync_status",
        "",
        "1 when the kernel considers the clock synchronised, else 0.",
    ),
    Figure(
        "offset_seconds",
        "clock_offset_seconds",
        "timex_offset_seconds",
        "seconds",
        "Offset of the clock from its reference, as the kernel's clock discipline holds it.",
    ),
    Figure(
        "max_error_seconds",
        "clock_max_error_seconds",
        "timex_maxerror_seconds",
        "seconds",
        "Maximum error of the clock (16 s while unsynchronised).",
    ),
    Figure(
        "estimated_error_seconds",
        "clock_estimated_error_seconds",
        "timex_estimated_error_seconds",
        "seconds",
        "Estimated error of the clock.",
    ),
    Figure(
        "status",
        "clock_status",
        "timex_status",
        "",
        "Status bits of the kernel clock (STA_* of adjtimex).",
    ),
    Figure(
        "frequency_adjustment_ratio",
        "clock_frequency_adjustment_ratio",
        "timex_frequency_adjustment_ratio",
        "",
        "Frequency the clock runs at relative to its nominal one.",
    ),
    Figure(
        "tick_seconds",
        "clock_tick_seconds",
        "timex_tick_seconds",
        "seconds",
        "Time between clock ticks.",
    ),
    Figure(
        "tai_offset_seconds",
        "clock_tai_offset_seconds",
        "timex_tai_offset_seconds",
        "seconds",
        "International Atomic Time's offset from UTC, as the kernel knows it.",
    ),
    Figure(
        "constant",
        "clock_loop_time_constant",
        "timex_loop_time_constant",
        "",
        "Time constant of the clock's phase-locked loop.",
    ),
)
# the node's time and identity
TIME_AND_IDENTITY = (
    Figure(
        "boot_time_unix_nanos",
        "boot_time_seconds",
        "boot_time_seconds",
        "seconds",
        "Unix time the node booted.",
        extractor=lambda c: seconds(c.node.boot_time_unix_nanos),
    ),
    Figure(
        "time_seconds",
        "time_seconds",
        "time_seconds",
        "seconds",
        "Unix time on the node's clock when the agent collected.",
        extractor=lambda c: nonzero(c.node.clock.time_seconds),
    ),
    Figure(
        "time_zone_offset_seconds",
        "time_zone_offset_seconds",
        "time_zone_offset_seconds",
        "seconds",
        "Offset of the node's local time zone east of UTC.",
        extractor=lambda c: present(c.node.clock, "time_zone_offset_seconds"),
        labels={"time_zone": lambda c: c.node.clock.time_zone},
    ),
    Figure(
        "uname",
        "uname_info",
        "uname_info",
        "",
        "uname(2) of the node; always 1.",
        extractor=info_when(lambda node: node.uname_sysname or node.kernel_release),
        labels=uname_labels(),
    ),
    Figure(
        "os_release",
        "os_info",
        "os_info",
        "",
        "The node's os-release; always 1.",
        extractor=info_when(os_release),
        labels=os_release_labels(),
    ),
)
