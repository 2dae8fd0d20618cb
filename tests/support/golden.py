"""A fixed report with every field set, and its exposition per profile (golden files).

Every profile renders this report into tests/fixtures/golden/<profile>.prom; a test
compares on every run, so each change to what a figure becomes shows as a diff in
review. Regenerate with `make golden` (python -m tests.support.golden --write).
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass, field
from pathlib import Path

from kubensage_api.telemetry import telemetry_pb2 as tm
from relay.enrich.objects import ContainerResources, NodeInfo, Owner, PodInfo
from relay.expose.text import merge, render_node
from relay.series.profiles import PROFILES
from relay.series.rows import NodeContext
from relay.state.store import NodeView

GOLDEN_DIR = Path(__file__).resolve().parent.parent / "fixtures" / "golden"
NANOS = 1_000_000_000
T0 = 1_760_000_000 * NANOS  # collection time of the report
BOOT = T0 - 86_400 * NANOS
MIB = 1024 * 1024


def _pressure(target: tm.Pressure, resource: str, some: float, full: float | None) -> None:
    target.resource = resource
    target.some.total_seconds, target.some.avg10 = some, 0.5
    target.some.avg60, target.some.avg300 = 0.25, 0.125
    if full is not None:
        target.full.total_seconds, target.full.avg10 = full, 0.1
        target.full.avg60, target.full.avg300 = 0.05, 0.025


def _interface(target: tm.NetworkInterface, name: str, scale: int, full: bool) -> None:
    target.name = name
    target.receive_bytes, target.receive_packets = 1000 * scale, 10 * scale
    target.receive_errors, target.receive_drops = 1, 2
    target.transmit_bytes, target.transmit_packets = 2000 * scale, 20 * scale
    target.transmit_errors, target.transmit_drops = 3, 4
    if full:
        target.receive_fifo, target.receive_frame = 5, 6
        target.receive_compressed, target.receive_multicast = 7, 8
        target.transmit_fifo, target.transmit_collisions = 9, 10
        target.transmit_carrier, target.transmit_compressed = 11, 12


def _node(node: tm.Node) -> None:
    node.name, node.hostname = "golden-node", "golden-node.example"
    node.kernel_release, node.kernel_version = "6.1.0-13-amd64", "#1 SMP Debian 6.1.55-1"
    node.architecture, node.os_name, node.os_version = "x86_64", "Debian GNU/Linux", "12"
    node.os_image = "Debian GNU/Linux 12 (bookworm)"
    node.os_id, node.os_version_codename = "debian", "bookworm"
    node.uname_sysname, node.uname_domainname = "Linux", "(none)"
    node.boot_time_unix_nanos, node.uptime_seconds, node.cpu_count = BOOT, 86_400.0, 2
    node.cpu_seconds_by_mode.update(
        {"user": 3000.0, "nice": 1.0, "system": 1500.0, "idle": 160_000.0, "iowait": 20.0}
    )
    node.load.load1, node.load.load5, node.load.load15 = 0.5, 0.25, 0.125
    node.context_switches, node.forks, node.interrupts = 9_000_000, 40_000, 7_000_000
    node.procs_running, node.procs_blocked = 3, 1
    memory = node.memory
    memory.total_bytes, memory.available_bytes = 8192 * MIB, 6144 * MIB
    memory.free_bytes, memory.buffers_bytes, memory.cached_bytes = 4096 * MIB, 128 * MIB, 1024 * MIB
    memory.swap_total_bytes, memory.swap_free_bytes = 1024 * MIB, 1000 * MIB
    _pressure(node.pressure.add(), "cpu", 12.5, 1.5)
    _pressure(node.pressure.add(), "memory", 2.0, 1.0)
    _pressure(node.pressure.add(), "io", 30.0, 20.0)
    _pressure(node.pressure.add(), "irq", 0.0, 0.5)
    _interface(node.interfaces.add(), "lo", 50, full=True)
    _interface(node.interfaces.add(), "eth0", 900, full=True)
    node.addresses.extend(["10.0.0.7", "fe80::1"])
    for index in range(2):
        cpu = node.cpus.add(cpu=str(index), user=1500.0 + index, nice=0.5, system=750.0)
        cpu.idle, cpu.iowait, cpu.irq, cpu.softirq = 80_000.0, 10.0, 1.0, 2.0
        cpu.steal, cpu.guest, cpu.guest_nice = 0.25, 0.125, 0.0625
    root = node.filesystems.add(device="/dev/vda1", mountpoint="/", fstype="ext4")
    root.size_bytes, root.free_bytes, root.available_bytes = (
        100 * 1024 * MIB,
        60 * 1024 * MIB,
        55 * 1024 * MIB,
    )
    root.files, root.files_free = 6_000_000, 5_000_000
    boot = node.filesystems.add(device="/dev/vda15", mountpoint="/boot/efi", fstype="vfat")
    boot.size_bytes, boot.free_bytes, boot.available_bytes = 124 * MIB, 118 * MIB, 118 * MIB
    boot.files, boot.files_free, boot.read_only = 0, 0, True
    node.filesystems.add(
        device="nfs:/export", mountpoint="/mnt/stuck", fstype="nfs4", device_error=True
    )
    disk = node.disks.add(device="vda")
    disk.reads_completed, disk.reads_merged, disk.read_bytes = 20_000, 3_000, 900 * MIB
    disk.read_time_seconds, disk.writes_completed, disk.writes_merged = 12.5, 50_000, 40_000
    disk.written_bytes, disk.write_time_seconds, disk.io_now = 2048 * MIB, 80.25, 1
    disk.io_time_seconds, disk.io_time_weighted_seconds = 60.5, 95.75
    disk.discards_completed, disk.discards_merged, disk.discarded_sectors = 10, 2, 4096
    disk.discard_time_seconds, disk.flush_requests, disk.flush_time_seconds = 0.5, 700, 3.25
    node.meminfo.update(
        {
            "MemTotal": 8192 * MIB,
            "MemFree": 4096 * MIB,
            "MemAvailable": 6144 * MIB,
            "Active(anon)": 512 * MIB,
            "HugePages_Total": 0,
        }
    )
    vm = node.vmstat
    vm.pgfault, vm.pgmajfault, vm.pgpgin, vm.pgpgout = 9_000_000, 1_200, 800_000, 2_000_000
    vm.pswpin, vm.pswpout, vm.oom_kill = 5, 7, 1
    node.file_descriptors.allocated, node.file_descriptors.maximum = 2048, 9_223_372_036_854_775_807
    node.conntrack.entries, node.conntrack.limit = 300, 262_144
    clock = node.clock
    clock.time_seconds, clock.synchronised = T0 / NANOS, True
    clock.offset_seconds, clock.max_error_seconds = -0.000125, 0.016
    clock.estimated_error_seconds, clock.status, clock.frequency_adjustment_ratio = (
        0.0005,
        8193,
        1.0000125,
    )
    clock.tick_seconds, clock.tai_offset_seconds, clock.constant = 0.01, 37, 7.0
    clock.time_zone, clock.time_zone_offset_seconds = "CET", 3600
    node.os_release.update(
        {
            "ID": "debian",
            "NAME": "Debian GNU/Linux",
            "VERSION_ID": "12",
            "VERSION_CODENAME": "bookworm",
        }
    )


def _container(
    pod: tm.Pod,
    name: str,
    cid: str,
    *,
    state: int = tm.CONTAINER_STATE_RUNNING,
    attempt: int = 0,
    cpu_seconds: float = 125.5,
) -> tm.Container:
    c = pod.containers.add(id=cid, name=name, attempt=attempt, state=state)
    c.image, c.image_ref = f"registry.example/{name}:1.2", f"sha256:{cid * 4}"
    c.created_at_unix_nanos = T0 - 3600 * NANOS + attempt * NANOS
    c.started_at_unix_nanos = c.created_at_unix_nanos + NANOS
    c.labels["io.kubernetes.container.name"] = name
    c.cgroup_path = f"/kubepods/burstable/pod{pod.uid}/{cid}"
    if state == tm.CONTAINER_STATE_EXITED:
        c.finished_at_unix_nanos, c.exit_code, c.reason = T0 - 60 * NANOS, 137, "OOMKilled"
    cpu = c.cpu
    cpu.usage_seconds_total, cpu.usage_cores, cpu.rate_source = cpu_seconds, 0.25, "computed"
    cpu.user_seconds_total, cpu.system_seconds_total = cpu_seconds * 0.75, cpu_seconds * 0.25
    cpu.cfs_periods_total, cpu.cfs_throttled_periods_total = 40_000, 12_000
    cpu.cfs_throttled_seconds_total, cpu.source = 310.5, "cgroup"
    memory = c.memory
    memory.working_set_bytes, memory.usage_bytes, memory.rss_bytes = 96 * MIB, 130 * MIB, 80 * MIB
    memory.available_bytes, memory.page_faults, memory.major_page_faults = 32 * MIB, 50_000, 12
    memory.cache_bytes, memory.mapped_file_bytes, memory.max_usage_bytes = (
        40 * MIB,
        8 * MIB,
        140 * MIB,
    )
    memory.limit_hits, memory.high_events, memory.oom_kills = 3, 9, 2
    memory.source = "cgroup"
    c.writable_layer.mountpoint = "/var/lib/containerd/io.containerd.snapshotter.v1.overlayfs"
    c.writable_layer.used_bytes, c.writable_layer.inodes_used = 65_536, 42
    c.swap_usage_bytes = 4 * MIB
    _pressure(c.pressure.add(), "cpu", 4.5, 1.25)
    _pressure(c.pressure.add(), "memory", 0.75, 0.5)
    _pressure(c.pressure.add(), "io", 1.0, 0.25)
    limits = c.limits
    limits.cpu_cores, limits.memory_bytes = 0.5, 256 * MIB
    limits.cpu_quota_micros, limits.cpu_period_micros, limits.cpu_shares = 50_000, 100_000, 512
    device = c.block_io.add(device="vda", major=254, minor=0)
    device.reads, device.writes, device.read_bytes, device.written_bytes = (
        120,
        340,
        4 * MIB,
        9 * MIB,
    )
    c.block_io.add(device="253:7", major=253, minor=7, writes=2, written_bytes=8192)
    c.tasks.threads, c.tasks.threads_max = 7, 4096
    return c


def _pods(report: tm.Metrics) -> None:
    web = report.pods.add(
        sandbox_id="sandbox-web",
        name="web-7d4b9c-x2x9k",
        namespace="shop",
        uid="uid-web",
        state=tm.POD_STATE_READY,
        created_at_unix_nanos=T0 - 7200 * NANOS,
        attempt=0,
        runtime_handler="runc",
        network_source="procfs",
    )
    web.labels.update({"app": "web", "pod-template-hash": "7d4b9c"})
    web.annotations["kubernetes.io/config.seen"] = "2025-10-09T08:00:00Z"
    web.ips.append("10.244.1.7")
    _interface(web.network.add(), "eth0", 30, full=False)
    _container(web, "app", "c0ffee01", state=tm.CONTAINER_STATE_EXITED, cpu_seconds=99.0)
    _container(web, "app", "c0ffee02", attempt=1)
    _container(web, "proxy", "c0ffee03", cpu_seconds=12.0)
    agent = report.pods.add(
        sandbox_id="sandbox-agent",
        name="kubensage-agent-abcde",
        namespace="kubensage",
        uid="uid-agent",
        state=tm.POD_STATE_READY,
        created_at_unix_nanos=T0 - 9000 * NANOS,
        attempt=1,
        network_source="host",
    )
    _container(agent, "agent", "a9e47001", cpu_seconds=3.5)


def report() -> tm.Metrics:
    out = tm.Metrics(
        agent_id="golden-agent", sequence=42, collected_at_unix_nanos=T0, agent_version="0.1.0"
    )
    out.runtime.endpoint = "unix:///run/containerd/containerd.sock"
    out.runtime.name, out.runtime.version, out.runtime.api_version = "containerd", "1.6.20", "v1"
    _node(out.node)
    _pods(out)
    image_fs = out.image_filesystems.add(
        mountpoint="/var/lib/containerd/io.containerd.snapshotter.v1.overlayfs"
    )
    image_fs.used_bytes, image_fs.inodes_used = 900 * MIB, 30_000
    health = out.health
    health.cycle_duration_seconds, health.queue_depth, health.dropped_reports_total = 0.012, 1, 4
    health.reconnects_total, health.cri_errors_total, health.interval_seconds = 2, 5, 10.0
    health.collector_errors_total.update({"pressure": 1, "filesystem": 3})
    health.started_at_unix_nanos = T0 - 3000 * NANOS
    health.spool_corrupt_records_total, health.spooled_bytes = 1, 65_536
    health.process_cpu_seconds_total, health.process_resident_memory_bytes = 31.5, 38 * MIB
    health.check_errors_total = 1
    ntp = out.checks.add(name="ntp", state=tm.CHECK_STATE_OK, exit_code=0, output="OK: synced")
    ntp.duration_seconds, ntp.ran_at_unix_nanos, ntp.interval_seconds = 0.02, T0 - 5 * NANOS, 60.0
    ntp.runs_total.update({"ok": 40, "warning": 1})
    hung = out.checks.add(name="registry", state=tm.CHECK_STATE_UNKNOWN, timed_out=True)
    hung.duration_seconds, hung.ran_at_unix_nanos, hung.interval_seconds = (
        10.0,
        T0 - 30 * NANOS,
        120.0,
    )
    hung.runs_total["unknown"] = 3
    return out


@dataclass
class GoldenEnrichment:
    """Fixed Kubernetes metadata for the golden report, so the enriched labels are covered."""

    cluster_name: str = "golden-cluster"
    pods: dict[str, PodInfo] = field(
        default_factory=lambda: {
            "uid-web": PodInfo(
                uid="uid-web",
                namespace="shop",
                name="web-7d4b9c-x2x9k",
                owner=Owner("ReplicaSet", "web-7d4b9c"),
                qos_class="Burstable",
                priority_class="",
                host_network=False,
                labels=(("app", "web"), ("app.kubernetes.io/part-of", "shop")),
                containers=(
                    ContainerResources("app", 0.25, 0.5, 128 * MIB, 256 * MIB),
                    ContainerResources("proxy", 0.05, None, 32 * MIB, None),
                ),
                template_hash="7d4b9c",
            )
        }
    )

    def pod(self, uid: str) -> PodInfo | None:
        return self.pods.get(uid)

    def workload(self, pod: PodInfo | None) -> tuple[str, str]:
        return ("Deployment", "web") if pod is not None else ("", "")

    def node(self, name: str) -> NodeInfo | None:
        return NodeInfo(
            name=name,
            region="eu-west-1",
            zone="eu-west-1a",
            instance_type="m6i.large",
            kubelet_version="v1.30.2",
            runtime_version="containerd://1.6.20",
            provider="aws",
            cluster_name="",
        )

    def ready(self) -> bool:
        return True


def view() -> NodeView:
    fixed = report()
    return NodeView(
        node=fixed.node.name,
        agent_id=fixed.agent_id,
        report=fixed,
        received_at_unix=T0 / NANOS + 0.25,
        connected=True,
    )


def render(profile: str) -> str:
    return merge([render_node([PROFILES[profile]], NodeContext(view(), GoldenEnrichment()))])


def path(profile: str) -> Path:
    return GOLDEN_DIR / f"{profile}.prom"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--write", action="store_true", help="rewrite the golden files")
    args = parser.parse_args()
    stale = []
    for profile in PROFILES:
        text = render(profile)
        if args.write:
            GOLDEN_DIR.mkdir(parents=True, exist_ok=True)
            path(profile).write_text(text)
        elif not path(profile).exists() or path(profile).read_text() != text:
            stale.append(profile)
    if stale:
        sys.exit(f"stale golden files: {', '.join(stale)}; run `make golden`")


if __name__ == "__main__":
    main()
