"""A private containerd for tests and benchmarks: own root, state and socket in a temp dir.

Everything it starts (containerd, its shims, overlay mounts) is torn down by `stop()`.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import time
from pathlib import Path

import grpc
import psutil

from kubensage_agent.parsers.cgroup import parse_cgroup_mounts
from kubensage_api.cri import api_pb2, api_pb2_grpc
from kubensage_lab.oci_image import build_image_archive

PAUSE_IMAGE = "docker.io/kubensage/pause:test"
# Debian's containernetworking-plugins
CNI_PLUGINS = Path("/usr/lib/cni")
CNI_NETWORK = "kubensage-test"
WORKLOAD_IMAGE = "docker.io/kubensage/busybox:test"

CONFIG_TEMPLATE = """\
version = 2
root = "{root}/root"
state = "{root}/state"
disabled_plugins = ["io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs",
                    "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.aufs",
                    "io.containerd.tracing.processor.v1.otlp", "io.containerd.internal.v1.tracing"]

[grpc]
  address = "{socket}"

[ttrpc]
  address = "{root}/containerd.sock.ttrpc"

[debug]
  address = ""

[plugins."io.containerd.internal.v1.opt"]
  path = "{root}/opt"

[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "{pause}"
  restrict_oom_score_adj = true
  disable_apparmor = true
  enable_selinux = false
  stats_collect_period = {stats_period}
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "{snapshotter}"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "{root}/cni/bin"
    conf_dir = "{root}/cni/conf"
"""


def _subtree_controllers(mountpoint: str) -> list[str]:
    try:
        return Path(mountpoint, "cgroup.subtree_control").read_text().split()
    except OSError:
        return []


def binaries_present() -> list[str]:
    """Names of the programs this harness needs that are not on PATH."""
    return [name for name in ("containerd", "ctr", "runc") if shutil.which(name) is None]


class Containerd:
    def __init__(
        self,
        workdir: Path,
        snapshotter: str = "overlayfs",
        stats_period_seconds: int = 1,
        cgroup_name: str = "kubensage-test",
    ) -> None:
        """`stats_period_seconds`: how often the CRI plugin walks writable layers for their
        usage (containerd's default is 10; tests use 1 to see figures quickly).
        `cgroup_name`: the pods' cgroups go under /<cgroup_name>-<pid> in every hierarchy."""
        self.workdir = workdir
        self.stats_period_seconds = stats_period_seconds
        self.socket_path = workdir / "containerd.sock"
        self.endpoint = f"unix://{self.socket_path}"
        self.snapshotter = snapshotter
        self.log_path = workdir / "containerd.log"
        self.process: subprocess.Popen[bytes] | None = None
        self.cgroup_root = f"/{cgroup_name}-{os.getpid()}"

    def start(self, timeout: float = 30.0) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        for sub in ("cni/bin", "cni/conf", "opt"):
            (self.workdir / sub).mkdir(parents=True, exist_ok=True)
        config = self.workdir / "config.toml"
        config.write_text(
            CONFIG_TEMPLATE.format(
                root=self.workdir,
                socket=self.socket_path,
                pause=PAUSE_IMAGE,
                snapshotter=self.snapshotter,
                stats_period=self.stats_period_seconds,
            )
        )
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                ["containerd", "--config", str(config)],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        self.wait_ready(timeout)

    def wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        last_error = ""
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                raise RuntimeError(f"containerd exited early; log:\n{self.log_tail()}")
            if self.socket_path.exists():
                try:
                    with grpc.insecure_channel(self.endpoint) as channel:
                        api_pb2_grpc.RuntimeServiceStub(channel).Version(
                            api_pb2.VersionRequest(version="v1"), timeout=2
                        )
                    return
                except grpc.RpcError as exc:
                    last_error = str(exc)
            time.sleep(0.2)
        raise RuntimeError(
            f"containerd not ready in {timeout}s ({last_error}); log:\n{self.log_tail()}"
        )

    def import_images(self) -> None:
        images = self.workdir / "images"
        images.mkdir(exist_ok=True)
        archives = [
            build_image_archive(images / "pause.tar", PAUSE_IMAGE, ["/bin/sleep", "2147483647"]),
            build_image_archive(images / "busybox.tar", WORKLOAD_IMAGE, ["/bin/sh"]),
        ]
        for archive in archives:
            subprocess.run(
                [
                    "ctr",
                    "--address",
                    str(self.socket_path),
                    "-n",
                    "k8s.io",
                    "images",
                    "import",
                    "--no-unpack",
                    str(archive),
                ],
                check=True,
                capture_output=True,
                timeout=60,
            )

    def count_block_io(self, device: str) -> None:
        """Have a cgroup v1 kernel count block I/O per cgroup on `device` ("MAJ:MIN").

        Recent kernels fill blkio.throttle.io_service_bytes / io_serviced only on devices
        where blk-throttle holds a rule, so this sets one without a limit on the test's
        cgroup root, as a node's admin would. cgroup v2 (io.stat) always counts.
        """
        for mount in parse_cgroup_mounts(Path("/proc/self/mountinfo").read_text()):
            if mount.version == 1 and "blkio" in mount.options:
                root = Path(mount.mountpoint + self.cgroup_root)
                root.mkdir(exist_ok=True)
                (root / "blkio.throttle.write_bps_device").write_text(f"{device} {2**64 - 1}\n")
                return

    def enable_pod_network(self) -> str:
        """Give pods in their own network namespace an `eth0` joined to the node by a veth
        pair (CNI ptp with host-local addresses), as a node's CNI does; returns the node
        side's address, which the pods can reach. Pods with host network are unaffected.

        The subnet is from the benchmarking range 198.18.0.0/15, one /24 per test process;
        removing a pod removes its veth and route (CNI DEL)."""
        subnet = f"198.18.{os.getpid() % 256}"
        for plugin in ("ptp", "host-local", "loopback"):
            link = self.workdir / "cni" / "bin" / plugin
            if not link.exists():
                link.symlink_to(CNI_PLUGINS / plugin)
        network = {
            "cniVersion": "0.4.0",
            "name": CNI_NETWORK,
            "plugins": [
                {
                    "type": "ptp",
                    "ipMasq": False,
                    "ipam": {
                        "type": "host-local",
                        "subnet": f"{subnet}.0/24",
                        "gateway": f"{subnet}.1",
                        "dataDir": str(self.workdir / "cni" / "ipam"),
                    },
                }
            ],
        }
        (self.workdir / "cni" / "conf" / "10-kubensage-test.conflist").write_text(
            json.dumps(network)
        )
        return f"{subnet}.1"

    def favour_cpu(self) -> None:
        """Give the test's cgroup root the largest CPU weight, as a node gives kubepods
        most of it: on a machine busy with other work, its pods still get the CPU their
        limits allow (and so reach those limits)."""
        for mount in parse_cgroup_mounts(Path("/proc/self/mountinfo").read_text()):
            if mount.version == 1 and "cpu" in mount.options:
                setting, value = "cpu.shares", "262144"
            elif mount.version == 2 and "cpu" in _subtree_controllers(mount.mountpoint):
                setting, value = "cpu.weight", "10000"
            else:
                continue
            root = Path(mount.mountpoint + self.cgroup_root)
            root.mkdir(exist_ok=True)
            (root / setting).write_text(value + "\n")

    def restart(self, timeout: float = 30.0) -> None:
        """Stop only the daemon (shims and containers keep running) and start it again."""
        self._stop_daemon()
        self.start(timeout)

    def stop(self) -> None:
        with contextlib.suppress(Exception):
            self._remove_all_pods()
        self._stop_daemon()
        self._kill_shims()
        self._unmount_all()
        self._remove_cgroups()

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def _remove_all_pods(self) -> None:
        with grpc.insecure_channel(self.endpoint) as channel:
            stub = api_pb2_grpc.RuntimeServiceStub(channel)
            for pod in stub.ListPodSandbox(api_pb2.ListPodSandboxRequest(), timeout=10).items:
                stub.StopPodSandbox(
                    api_pb2.StopPodSandboxRequest(pod_sandbox_id=pod.id), timeout=30
                )
                stub.RemovePodSandbox(
                    api_pb2.RemovePodSandboxRequest(pod_sandbox_id=pod.id), timeout=30
                )

    def _stop_daemon(self) -> None:
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        self.process = None

    def shims(self) -> list[psutil.Process]:
        """The shim processes of this containerd (they outlive a daemon restart)."""
        marker = str(self.socket_path)
        found = []
        for proc in psutil.process_iter(["cmdline"]):
            cmdline = proc.info.get("cmdline") or []
            if any(marker in part for part in cmdline) and "containerd-shim" in " ".join(cmdline):
                found.append(proc)
        return found

    def _kill_shims(self) -> None:
        for proc in self.shims():
            with contextlib.suppress(psutil.Error):
                for child in proc.children(recursive=True):
                    child.kill()
                proc.kill()

    def _unmount_all(self) -> None:
        prefix = str(self.workdir)
        mounts = [
            line.split()[1]
            for line in Path("/proc/self/mounts").read_text().splitlines()
            if line.split()[1].startswith(prefix)
        ]
        for mountpoint in sorted(mounts, key=len, reverse=True):
            subprocess.run(["umount", "-l", mountpoint], check=False, capture_output=True)

    def _remove_cgroups(self) -> None:
        """Remove the (now empty) cgroups our pods' cgroup parent created, deepest first."""
        for line in Path("/proc/self/mounts").read_text().splitlines():
            fields = line.split()
            if fields[2] not in ("cgroup", "cgroup2"):
                continue
            top = Path(fields[1] + self.cgroup_root)
            if not top.is_dir():
                continue
            for folder in sorted(top.rglob("*"), key=lambda p: len(p.parts), reverse=True):
                if folder.is_dir():
                    with contextlib.suppress(OSError):
                        folder.rmdir()
            with contextlib.suppress(OSError):
                top.rmdir()
