"""The node_exporter profile: node_exporter 1.x's names, types, units and labels for every
node figure the agent has, so the node-mixin's alerts, rules and dashboards work unchanged.

The node is in `instance` (no `node` label): the node-mixin keys everything by it, and a
scrape with `honor_labels: true` keeps it instead of the relay's address. Types follow
node_exporter 1.5 to the letter, vmstat's untyped counters included, so metadata-driven
tools see what they would see with node_exporter. `node_exporter_build_info` is
kubensage's stand-in: the node-mixin's USE dashboards list instances from it.
"""

from __future__ import annotations

import functools
import re
from typing import Any

from relay.series import nodefigures as figures
from relay.series.rows import (
    CpuMode,
    Item,
    NodeContext,
    is_page_count,
    logical_cpu_modes,
    meminfo_fields,
)
from relay.series.spec import Family, Kind, Profile, Subject
from relay.series.values import (
    PsiKind,
    item_field,
    os_release,
    os_release_key,
    psi_total,
)

COUNTER, GAUGE, UNTYPED = Kind.COUNTER, Kind.GAUGE, Kind.UNTYPED
# node_cpu_seconds_total's modes; guest time (already inside user and nice) has its own family
CPU_MODES = tuple(
    (mode, mode) for mode in ("user", "nice", "system", "idle", "iowait", "irq", "softirq", "steal")
)
CPU_GUEST_MODES = (("guest", "user"), ("guest_nice", "nice"))
# node_exporter's PSI families: "some" is waiting, "full" stalled; it serves no cpu "full",
# and the kernel gives irq only a "full" line
PRESSURE: tuple[tuple[str, PsiKind, str, str], ...] = (
    ("cpu", "some", "waiting", "Time processes waited for CPU (PSI some)."),
    ("memory", "some", "waiting", "Time processes waited for memory (PSI some)."),
    ("memory", "full", "stalled", "Time no process could make progress for memory (PSI full)."),
    ("io", "some", "waiting", "Time processes waited for I/O (PSI some)."),
    ("io", "full", "stalled", "Time no process could make progress for I/O (PSI full)."),
    ("irq", "full", "stalled", "Time the CPUs spent on interrupts instead of tasks (PSI full)."),
)
# Go's names for the machines uname(2) reports, for node_exporter_build_info's goarch
GO_ARCHITECTURES = {
    "x86_64": "amd64",
    "aarch64": "arm64",
    "armv7l": "arm",
    "armv6l": "arm",
    "i686": "386",
    "i386": "386",
    "ppc64le": "ppc64le",
    "s390x": "s390x",
    "riscv64": "riscv64",
}
# node_os_version: the leading major[.minor] of VERSION_ID, as node_exporter parses it
MAJOR_MINOR = re.compile(r"[0-9]+\.?[0-9]*")
# node_memory_<Field>: "Active(anon)" is named Active_anon
PARENTHESES = re.compile(r"\((.*)\)")


def _instance(context: NodeContext) -> str:
    return context.view.node


NODE: Subject[NodeContext] = Subject(
    "node",
    "The node, as the scrape's instance.",
    lambda context: (context,),
    {"instance": _instance},
)
CPU = NODE.part(
    "CPU mode",
    "Each mode of each logical CPU of /proc/stat; guest time is not a mode.",
    logical_cpu_modes(CPU_MODES),
    {"cpu": lambda r: r.cpu, "mode": lambda r: r.mode},
)
CPU_GUEST = NODE.part(
    "CPU guest mode",
    "Guest time (user) and niced guest time (nice) of each logical CPU.",
    logical_cpu_modes(CPU_GUEST_MODES),
    {"cpu": lambda r: r.cpu, "mode": lambda r: r.mode},
)
MEMINFO = NODE.part(
    "meminfo field",
    "Each /proc/meminfo field; the field is in the family's name.",
    meminfo_fields,
    {},
)
FILESYSTEM = figures.filesystems_of(NODE)
DISK = figures.disks_of(NODE)
INTERFACE = figures.interfaces_of(NODE)


@functools.lru_cache(maxsize=512)
def meminfo_name(field: str) -> str:
    """node_exporter's family for a meminfo field: kB fields in bytes end in _bytes, the
    HugePages_* counts do not."""
    name = "node_memory_" + PARENTHESES.sub(r"_\1", field)
    return name if is_page_count(field) else f"{name}_bytes"


def _exporter(figure: figures.Figure) -> str:
    return f"node_{figure.exporter}"


def _readonly(row: Item[NodeContext, Any]) -> float | None:
    """node_exporter writes only device_error for a mount whose statfs failed."""
    return None if row.item.device_error else float(row.item.read_only)


def _os_version(context: NodeContext) -> float | None:
    """Written only for a VERSION_ID that starts with a number above 0, as node_exporter does."""
    found = MAJOR_MINOR.match(os_release(context.node).get("VERSION_ID", ""))
    version = float(found.group()) if found else 0.0
    return version or None


def _build_info_labels() -> dict[str, Any]:
    return {
        "branch": lambda c: "kubensage",
        "goarch": lambda c: GO_ARCHITECTURES.get(c.node.architecture, c.node.architecture),
        "goos": lambda c: c.node.uname_sysname.lower(),
        "goversion": lambda c: "unknown",
        "revision": lambda c: "unknown",
        "version": lambda c: c.report.agent_version,
    }


def _node(
    name: str, kind: Kind, unit: str, doc: str, value: Any, *, labels: dict[str, Any] | None = None
) -> Family[Any]:
    return Family(f"node_{name}", kind, unit, doc, NODE, value, labels=labels or {})


def _cpu_seconds(row: CpuMode) -> float:
    return row.seconds


FAMILIES: tuple[Family[Any], ...] = (
    Family(
        "node_cpu_seconds_total",
        COUNTER,
        "seconds",
        "Seconds each CPU spent in each mode.",
        CPU,
        _cpu_seconds,
    ),
    Family(
        "node_cpu_guest_seconds_total",
        COUNTER,
        "seconds",
        "Seconds each CPU spent running guests (also counted in user and nice).",
        CPU_GUEST,
        _cpu_seconds,
    ),
    *figures.declare(figures.LOAD, _exporter, NODE, figures.load_average),
    Family(
        "node_memory_<Field>_bytes",
        GAUGE,
        "bytes",
        "A /proc/meminfo field given in kB, in bytes; one family per field.",
        MEMINFO,
        lambda r: None if is_page_count(r.item[0]) else float(r.item[1]),
        name_of=lambda r: meminfo_name(r.item[0]),
    ),
    Family(
        "node_memory_<Field>",
        GAUGE,
        "",
        "A /proc/meminfo count of huge pages (HugePages_*); one family per field.",
        MEMINFO,
        lambda r: float(r.item[1]) if is_page_count(r.item[0]) else None,
        name_of=lambda r: meminfo_name(r.item[0]),
    ),
    *figures.declare(figures.FILESYSTEM, _exporter, FILESYSTEM, item_field),
    Family(
        "node_filesystem_readonly",
        GAUGE,
        "",
        "1 when the filesystem is mounted read-only, else 0; absent when statfs failed.",
        FILESYSTEM,
        _readonly,
    ),
    Family(
        "node_filesystem_device_error",
        GAUGE,
        "",
        "1 when statfs failed or did not answer in time (the other figures are then absent).",
        FILESYSTEM,
        lambda r: float(r.item.device_error),
    ),
    *figures.declare(figures.DISK, _exporter, DISK, item_field),
    *figures.declare(
        figures.NETWORK_BASIC, lambda f: f"node_network_{f.exporter}", INTERFACE, item_field
    ),
    *figures.declare(
        figures.NETWORK_DETAIL, lambda f: f"node_network_{f.exporter}", INTERFACE, item_field
    ),
    *figures.declare(figures.VMSTAT, _exporter, NODE, figures.node_field("vmstat"), kind=UNTYPED),
    *figures.declare(
        figures.FILE_DESCRIPTORS, _exporter, NODE, figures.node_field("file_descriptors")
    ),
    *figures.declare(figures.CONNTRACK, _exporter, NODE, figures.node_field("conntrack")),
    *figures.declare(figures.CLOCK, _exporter, NODE, figures.node_field("clock")),
    *figures.declare(figures.TIME_AND_IDENTITY, _exporter, NODE, figures.node_field()),
    *figures.declare(figures.STAT, _exporter, NODE, figures.node_field()),
    *(
        _node(
            f"pressure_{resource}_{meaning}_seconds_total",
            COUNTER,
            "seconds",
            doc,
            psi_total(resource, kind),
        )
        for resource, kind, meaning, doc in PRESSURE
    ),
    _node(
        "os_version",
        GAUGE,
        "",
        "The major.minor part of the os-release VERSION_ID.",
        _os_version,
        labels={
            "id": os_release_key("ID"),
            "id_like": os_release_key("ID_LIKE"),
            "name": os_release_key("NAME"),
        },
    ),
    _node(
        "exporter_build_info",
        GAUGE,
        "",
        "kubensage's stand-in for node_exporter's build info (version is the agent's); always 1.",
        lambda c: 1.0,
        labels=_build_info_labels(),
    ),
)

NODE_EXPORTER = Profile(
    "node_exporter",
    "node_exporter 1.x names, types and labels for the node, the node in instance "
    "(scrape with honor_labels), for the node-mixin; what it does not serve is listed "
    "in the README under Replacing node_exporter.",
    FAMILIES,
)
