"""Realistic reports for relay tests, built the way the agent fills them."""

from __future__ import annotations

import time

from google.protobuf.message import Message

from kubensage_api.telemetry import telemetry_pb2 as tm

NANOS = 1_000_000_000


def container(
    name: str,
    cid: str,
    *,
    cpu_seconds: float = 12.5,
    state: int = tm.CONTAINER_STATE_RUNNING,
    attempt: int = 0,
    created: int = 1_700_000_000 * NANOS,
) -> tm.Container:
    out = tm.Container(
        id=cid,
        name=name,
        attempt=attempt,
        image="registry.local/app:1.2",
        image_ref="sha256:abc",
        state=state,
        created_at_unix_nanos=created,
        started_at_unix_nanos=created + NANOS,
    )
    out.cpu.usage_seconds_total = cpu_seconds
    out.cpu.usage_cores = 0.5
    out.memory.working_set_bytes = 64 * 1024 * 1024
    out.memory.usage_bytes = 80 * 1024 * 1024
    out.memory.rss_bytes = 50 * 1024 * 1024
    out.memory.page_faults = 1000
    out.memory.major_page_faults = 3
    out.writable_layer.used_bytes = 4096
    out.writable_layer.inodes_used = 7
    out.limits.memory_bytes = 256 * 1024 * 1024
    pressure = out.pressure.add(resource="cpu")
    pressure.some.total_seconds = 1.25
    pressure.full.total_seconds = 0.5
    return out


def pod(
    name: str,
    namespace: str = "default",
    containers: list[tm.Container] | None = None,
    sandbox_id: str | None = None,
    labels: dict[str, str] | None = None,
) -> tm.Pod:
    out = tm.Pod(
        sandbox_id=sandbox_id or f"sb-{namespace}-{name}",
        name=name,
        namespace=namespace,
        uid=f"uid-{name}",
        state=tm.POD_STATE_READY,
        labels=labels or {},
    )
    out.containers.extend(containers or [])
    eth0 = out.network.add(name="eth0")
    eth0.receive_bytes, eth0.transmit_bytes = 1000, 2000
    return out


def report(
    node: str = "node-a",
    sequence: int = 1,
    pods: list[tm.Pod] | None = None,
    agent_id: str = "agent-1",
    interval: float = 10.0,
) -> tm.Metrics:
    out = tm.Metrics(
        agent_id=agent_id,
        sequence=sequence,
        collected_at_unix_nanos=time.time_ns(),
        agent_version="0.1.0",
    )
    out.runtime.name, out.runtime.version = "containerd", "1.6.20"
    n = out.node
    n.name, n.kernel_release, n.os_image, n.architecture = node, "6.1.0", "Debian 12", "x86_64"
    n.cpu_count = 2
    n.cpu_seconds_by_mode.update({"user": 100.0, "system": 50.0, "idle": 1000.0})
    n.load.load1, n.load.load5, n.load.load15 = 0.5, 0.4, 0.3
    n.memory.total_bytes, n.memory.available_bytes = 8 * 1024**3, 6 * 1024**3
    n.boot_time_unix_nanos = 1_690_000_000 * NANOS
    cpu_psi = n.pressure.add(resource="cpu")
    cpu_psi.some.total_seconds = 3.0
    eth0 = n.interfaces.add(name="eth0")
    eth0.receive_bytes, eth0.transmit_bytes = 10_000, 20_000
    out.pods.extend(
        pods if pods is not None else [pod("web-1", containers=[container("app", "c1")])]
    )
    out.health.interval_seconds = interval
    out.health.cycle_duration_seconds = 0.05
    out.health.collector_errors_total["pressure"] = 2
    return out


KUBELET_ANNOTATIONS = {
    "kubernetes.io/config.seen": "2024-05-02T10:11:12.123456789Z",
    "kubernetes.io/config.source": "api",
}


def full_container(name: str, cid: str, pod_name: str, namespace: str, uid: str) -> tm.Container:
    """A container with every figure a cgroup v1 node gives, labelled as the kubelet labels it."""
    out = container(name, cid)
    out.image = f"registry.example.com/{namespace}/{name}:v1.27.3"
    out.image_ref = "sha256:" + "ab12" * 16
    out.labels.update(
        {
            "io.kubernetes.container.name": name,
            "io.kubernetes.pod.name": pod_name,
            "io.kubernetes.pod.namespace": namespace,
            "io.kubernetes.pod.uid": uid,
        }
    )
    cpu = out.cpu
    cpu.rate_source, cpu.source = "computed", "cgroup"
    cpu.user_seconds_total, cpu.system_seconds_total = 8.0, 4.5
    cpu.cfs_periods_total, cpu.cfs_throttled_periods_total = 120_000, 340
    cpu.cfs_throttled_seconds_total = 12.25
    memory = out.memory
    memory.available_bytes, memory.cache_bytes = 190 * 1024 * 1024, 16 * 1024 * 1024
    memory.mapped_file_bytes, memory.max_usage_bytes = 2 * 1024 * 1024, 90 * 1024 * 1024
    memory.limit_hits, memory.oom_kills, memory.source = 0, 0, "cgroup"
    out.writable_layer.mountpoint = f"/var/lib/containerd/io.containerd.snapshotter/{cid}"
    out.limits.cpu_cores, out.limits.cpu_quota_micros = 0.5, 50_000
    out.limits.cpu_period_micros, out.limits.cpu_shares = 100_000, 512
    disk = out.block_io.add(device="sda", major=8, minor=0)
    disk.reads, disk.writes, disk.read_bytes, disk.written_bytes = 120, 3400, 4_915_200, 9_830_400
    out.tasks.threads, out.tasks.threads_max = 14, 4096
    out.swap_usage_bytes = 0
    for resource, stalled in (("memory", 0.75), ("io", 3.5)):
        psi = out.pressure.add(resource=resource)
        psi.some.total_seconds, psi.full.total_seconds = 2 * stalled, stalled
    for psi in out.pressure:  # the kernel's running averages, as percentages
        for line in (psi.some, psi.full):
            line.avg10, line.avg60, line.avg300 = 0.42, 0.31, 0.12
    out.cgroup_path = f"/kubepods/burstable/pod{uid}/{cid}"
    return out


def full_report(
    node: str = "node-a", sequence: int = 1, containers: int = 110, agent_id: str = "agent-1"
) -> tm.Metrics:
    """A node as the agent reports it with every collector on: `containers` pods of one
    container each (the kubelet's default cap is 110 pods), 4 CPUs, disks and filesystems."""
    pods = []
    for i in range(containers):
        namespace, name = f"team-{i % 12}", f"service-{i:03d}-7d9f8c6b5-x2k{i % 10}q"
        uid = f"3f2c1a9e-{i:04d}-4b7a-9c1d-5e6f7a8b9c0d"
        workload = pod(
            name,
            namespace,
            [full_container("app", f"{i:04d}" + "c0ffee" * 10, name, namespace, uid)],
            sandbox_id=f"{i:04d}" + "5a4db0c" * 8 + "ab",
            labels={
                "app.kubernetes.io/name": f"service-{i:03d}",
                "pod-template-hash": "7d9f8c6b5",
                "io.kubernetes.pod.name": name,
                "io.kubernetes.pod.namespace": namespace,
                "io.kubernetes.pod.uid": uid,
            },
        )
        workload.uid = uid
        workload.annotations.update(KUBELET_ANNOTATIONS)
        workload.runtime_handler, workload.network_source = "runc", "cri"
        workload.ips.append(f"10.244.{i // 250}.{i % 250 + 2}")
        pods.append(workload)
    out = report(node=node, sequence=sequence, pods=pods, agent_id=agent_id)
    n = out.node
    n.hostname, n.kernel_version = node, "#1 SMP PREEMPT_DYNAMIC Debian 6.1.90-1 (2024-05-03)"
    n.os_name, n.os_version, n.os_id, n.os_version_codename = "Debian", "12", "debian", "bookworm"
    n.uname_sysname, n.uname_domainname = "Linux", "(none)"
    n.cpu_count = 4
    n.cpu_seconds_by_mode.update({"nice": 1.0, "iowait": 20.0, "irq": 0.0, "softirq": 3.0})
    n.cpu_seconds_by_mode.update({"steal": 0.5})
    for cpu in range(n.cpu_count):
        n.cpus.add(cpu=str(cpu), user=25.0, system=12.5, idle=250.0, iowait=5.0, softirq=0.7)
    for device, mountpoint, fstype in (
        ("/dev/sda1", "/", "ext4"),
        ("/dev/sda15", "/boot/efi", "vfat"),
        ("tmpfs", "/run", "tmpfs"),
        ("/dev/sdb", "/var/lib/containerd", "xfs"),
    ):
        fs = n.filesystems.add(device=device, mountpoint=mountpoint, fstype=fstype)
        fs.size_bytes, fs.free_bytes, fs.available_bytes = 100 << 30, 60 << 30, 55 << 30
        fs.files, fs.files_free = 6_500_000, 6_000_000
    for device in ("sda", "sdb", "dm-0"):
        disk = n.disks.add(device=device, reads_completed=120_000, writes_completed=450_000)
        disk.read_bytes, disk.written_bytes, disk.io_time_seconds = 9 << 30, 30 << 30, 1200.5
    for key in ("MemTotal", "MemFree", "MemAvailable", "Buffers", "Cached", "SwapCached"):
        n.meminfo[key] = 8 << 30
    for key in ("Active", "Inactive", "Active(anon)", "Inactive(anon)", "Active(file)"):
        n.meminfo[key] = 2 << 30
    for key in ("Inactive(file)", "Unevictable", "Mlocked", "SwapTotal", "SwapFree", "Dirty"):
        n.meminfo[key] = 1 << 20
    for key in ("Writeback", "AnonPages", "Mapped", "Shmem", "KReclaimable", "Slab"):
        n.meminfo[key] = 1 << 24
    for key in ("SReclaimable", "SUnreclaim", "KernelStack", "PageTables", "Committed_AS"):
        n.meminfo[key] = 1 << 25
    for key in ("HugePages_Total", "HugePages_Free", "Hugepagesize", "DirectMap4k"):
        n.meminfo[key] = 2048
    n.vmstat.pgfault, n.vmstat.pgmajfault, n.vmstat.oom_kill = 9_000_000, 1200, 0
    n.file_descriptors.allocated, n.file_descriptors.maximum = 12_000, 9_223_372_036_854_775_807
    n.conntrack.entries, n.conntrack.limit = 4000, 262_144
    n.clock.time_seconds, n.clock.synchronised, n.clock.offset_seconds = 1.7e9, True, 0.0001
    for name in ("cali1a2b3c4d5e6", "vxlan.calico", "lo"):
        extra = n.interfaces.add(name=name)
        extra.receive_bytes, extra.transmit_bytes = 5_000_000, 4_000_000
    n.addresses.extend(["10.0.1.17", "fe80::1"])
    out.image_filesystems.add(mountpoint="/var/lib/containerd", used_bytes=20 << 30)
    check = out.checks.add(name="ntp", state=tm.CHECK_STATE_OK, exit_code=0, output="OK")
    check.runs_total["ok"] = 1440
    health = out.health
    health.process_cpu_seconds_total, health.process_resident_memory_bytes = 42.0, 48 << 20
    return out


def set_fields(message: Message, prefix: str = "") -> set[str]:
    """Dotted paths of the fields `message` sets, through nested and repeated messages
    (a map is one path): what a report carries, whatever the values."""
    paths = set()
    for field, value in message.ListFields():
        path = prefix + field.name
        entry = field.message_type
        if entry is None or entry.GetOptions().map_entry:
            paths.add(path)
            continue
        for item in value if field.is_repeated else (value,):
            paths |= set_fields(item, path + ".")
    return paths


def check(
    name: str,
    state: int = tm.CHECK_STATE_OK,
    exit_code: int | None = 0,
    output: str = "fine",
    runs: dict[str, int] | None = None,
) -> tm.CheckResult:
    """One check script's newest result, as the agent reports it."""
    out = tm.CheckResult(
        name=name,
        state=state,
        output=output,
        duration_seconds=0.25,
        ran_at_unix_nanos=1_700_000_500 * NANOS,
        interval_seconds=60,
    )
    if exit_code is not None:
        out.exit_code = exit_code
    out.runs_total.update(runs or {"ok": 3})
    return out
