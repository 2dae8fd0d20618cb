"""kubensage on one machine with pods of known behaviour: a private containerd, pods made
as the kubelet makes them, a relay, an agent with two check scripts, and a Prometheus
scraping the relay with the monitoring mixin's rules loaded.

`make demo` runs it for people; the end-to-end tests of the mixin run it for assertions.
Every part is started in order and stopped in reverse by `stop()`, which also works
after a partial start.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from kubensage_agent.parsers.cgroup import parse_cgroup_mounts
from kubensage_agent.parsers.uevent import parse_uevent
from kubensage_lab.containerd import Containerd
from kubensage_lab.cri_driver import CriDriver, PodHandle, Resources
from kubensage_lab.processes import Prometheus, RelayProcess, Service, agent_service

REPO = Path(__file__).resolve().parent.parent
RULE_FILES = (
    REPO / "deploy/monitoring/prometheus/rules.yaml",
    REPO / "deploy/monitoring/prometheus/alerts.yaml",
)
MIB = 1024 * 1024
NAMESPACE = "demo"
NODE = "kubensage-demo"
RELAY_JOB = "kubensage-relay"  # the mixin's default relay selector
# A child shell builds a 1 MiB string, then appends it to another twice a second until the
# 64 MiB limit gets the child OOM-killed; the container's own shell starts the next one.
GROW_UNTIL_KILLED = (
    'while :; do sh -c \'a=x; i=0; while [ $i -lt 20 ]; do a="$a$a"; i=$((i+1)); done; '
    'b=; while :; do b="$b$a"; sleep 0.5; done\'; sleep 3; done'
)


@dataclass(frozen=True)
class DemoPod:
    """A pod with one container of known behaviour; `owner` is its controller in the
    Kubernetes API (kind, name), None for a bare pod."""

    name: str
    behaviour: str
    container: str
    script: str
    resources: Resources
    qos: str
    owner: tuple[str, str] | None


DEMO_PODS = (
    DemoPod(
        "busy-6d9f7c5b8-k2x4q",
        "burns half a core, its CPU limit",
        "spin",
        "yes > /dev/null",
        Resources(cpu_request=0.5, cpu_limit=0.5, memory_limit=32 * MIB),
        "burstable",
        ("Deployment", "busy"),
    ),
    DemoPod(
        "idle",
        "sleeps: next to no CPU, a few hundred KiB of memory",
        "sleeper",
        "while :; do sleep 3600; done",
        Resources(cpu_request=0.05, memory_limit=16 * MIB),
        "burstable",
        None,
    ),
    DemoPod(
        "memory-hog-5f4b9d7c6-p8m2z",
        "grows its memory to the 64 MiB limit, is OOM-killed, starts again",
        "grower",
        GROW_UNTIL_KILLED,
        Resources(cpu_request=0.1, memory_limit=64 * MIB),
        "burstable",
        ("Deployment", "memory-hog"),
    ),
    DemoPod(
        "writer-0",
        "writes 8 MiB to disk with fsync every 2 seconds",
        "dd",
        "while :; do dd if=/dev/zero of=/data bs=1M count=8 conv=fsync 2>/dev/null; sleep 2; done",
        Resources(cpu_request=0.1, memory_limit=64 * MIB),
        "burstable",
        ("StatefulSet", "writer"),
    ),
    DemoPod(
        "cpu-limited-7b8c9d5f4-r7t9w",
        "wants two cores, may use a tenth of one: throttled in nearly every period",
        "spin",
        "yes > /dev/null & yes > /dev/null",
        Resources(cpu_request=0.1, cpu_limit=0.1, memory_limit=32 * MIB),
        "burstable",
        ("Deployment", "cpu-limited"),
    ),
)
CHECKS = {
    "demo-ok": "echo 'demo: all good'; exit 0",
    "demo-always-critical": "echo 'demo: this check always reports critical'; exit 2",
}


def whole_disk_of(path: Path) -> tuple[str, str] | None:
    """("MAJ:MIN", kernel name) of the disk holding `path` (a partition's disk: block
    cgroup figures count the whole disk); None on a filesystem without a block device."""
    st = os.stat(path)
    device = Path(f"/sys/dev/block/{os.major(st.st_dev)}:{os.minor(st.st_dev)}")
    if not device.exists():
        return None
    device = device.resolve()
    if (device / "partition").exists():
        device = device.parent
    uevent = parse_uevent((device / "uevent").read_text())
    return f"{uevent['MAJOR']}:{uevent['MINOR']}", uevent["DEVNAME"]


def cgroup_v1_host() -> bool:
    mounts = parse_cgroup_mounts(Path("/proc/self/mountinfo").read_text())
    return any(m.version == 1 for m in mounts)


class DemoStack:
    def __init__(
        self, workdir: Path, scrape_interval: str = "2s", cgroup_name: str = "kubensage-demo"
    ) -> None:
        self.workdir = workdir
        self.scrape_interval = scrape_interval
        self.containerd = Containerd(workdir / "containerd", cgroup_name=cgroup_name)
        self.driver: CriDriver | None = None
        self.pods: dict[str, PodHandle] = {}
        self.relay: RelayProcess | None = None
        self.agent: Service | None = None
        self.prometheus: Prometheus | None = None
        self.checks_dir = workdir / "checks.d"

    def start_runtime(self) -> None:
        """containerd, its images and the demo pods."""
        self.containerd.start()
        self.containerd.import_images()
        disk = whole_disk_of(self.containerd.workdir)
        if disk is not None and cgroup_v1_host():
            self.containerd.count_block_io(disk[0])
        self.containerd.favour_cpu()
        self.driver = CriDriver(self.containerd.endpoint, self.containerd.cgroup_root)
        for pod in DEMO_PODS:
            handle = self.driver.run_pod(pod.name, namespace=NAMESPACE, qos=pod.qos)
            self.pods[pod.name] = handle
            self.driver.run_container(handle, pod.container, pod.script, resources=pod.resources)

    def write_checks(self) -> None:
        """Check scripts as an admin installs them: root's, not writable by others, in a
        directory the `nobody` account they run as can traverse."""
        self.checks_dir.mkdir(mode=0o755)
        for folder in (self.workdir, self.checks_dir):
            folder.chmod(0o755)
        for name, body in CHECKS.items():
            path = self.checks_dir / name
            path.write_text(f"#!/bin/sh\n{body}\n")
            path.chmod(0o755)

    def start_services(self, *relay_args: str, interval: str = "2") -> None:
        """Relay, agent and Prometheus (with the mixin's rules)."""
        self.write_checks()
        self.relay = RelayProcess(self.workdir, "relay", *relay_args).start()
        self.agent = agent_service(
            self.workdir,
            NODE,
            self.relay.address,
            "--cri-socket",
            self.containerd.endpoint,
            "--interval",
            interval,
            "--checks-dir",
            str(self.checks_dir),
            "--flush-timeout",
            "5",
            name="agent",
        ).start()
        scrape = (
            f"  - job_name: {RELAY_JOB}\n"
            "    honor_labels: true\n"
            f"    static_configs: [{{targets: ['127.0.0.1:{self.relay.http}']}}]\n"
        )
        self.prometheus = Prometheus(
            self.workdir,
            [],
            scrape_interval=self.scrape_interval,
            scrape_configs=scrape,
            rule_files=RULE_FILES,
        )
        self.prometheus.start().wait_http(f"{self.prometheus.url}/-/ready")

    def stop(self) -> None:
        """Everything started, in reverse: processes, pods, containerd, mounts, cgroups."""
        for service in (self.prometheus, self.agent):
            if service is not None:
                with contextlib.suppress(Exception):
                    service.stop()
        if self.relay is not None:
            with contextlib.suppress(Exception):
                self.relay.stop()
        if self.driver is not None:
            self.driver.close()
        self.containerd.stop()
        shutil.rmtree(self.checks_dir, ignore_errors=True)
