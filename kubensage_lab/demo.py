"""`make demo`: kubensage with pods of known behaviour, a relay, an agent and a Prometheus
loaded with the monitoring mixin's rules, on this machine; Ctrl-C removes all of it.

Needs root (containerd, cgroups, mounts) and containerd, runc, busybox-static and
prometheus; as root on Debian they are installed with apt when missing.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import urllib.parse
from pathlib import Path

from kubensage_lab.stack import DEMO_PODS, NAMESPACE, DemoStack

PROGRAMS = {
    "containerd": "containerd",
    "ctr": "containerd",
    "runc": "runc",
    "prometheus": "prometheus",
}
BUSYBOX = Path("/bin/busybox")
PACKAGE_BUSYBOX = "busybox-static"
IN_DEMO = f'{{namespace="{NAMESPACE}"}}'
CONTAINER = "kubensage_container_"
# (what it shows, PromQL): printed as Prometheus graph links and explained in the README
QUERIES = (
    (
        "CPU cores per pod (busy ~0.5, cpu-limited ~0.1, idle ~0)",
        "sum by (pod) (node_namespace_pod_container:"
        f"{CONTAINER}cpu_usage_seconds_total:sum_rate5m{IN_DEMO})",
    ),
    (
        "Share of CPU periods throttled (cpu-limited ~1, busy ~0.5)",
        f"max by (pod) (increase({CONTAINER}cpu_cfs_throttled_periods_total{IN_DEMO}[1m]))"
        f" / max by (pod) (increase({CONTAINER}cpu_cfs_periods_total{IN_DEMO}[1m]))",
    ),
    (
        "Memory working set per pod (memory-hog: a sawtooth up to 64 MiB)",
        f"max by (pod) ({CONTAINER}memory_working_set_bytes{IN_DEMO})",
    ),
    (
        "OOM kills per pod (memory-hog: one more every half minute)",
        f"max by (pod) ({CONTAINER}oom_kills_total{IN_DEMO})",
    ),
    (
        "Bytes written to disk per second per pod (writer: ~4 MB/s)",
        f"max by (pod) (rate({CONTAINER}block_written_bytes_total{IN_DEMO}[1m]))",
    ),
    (
        "Alerts firing or pending (memory-hog OOM-killed; CPU throttling; the critical check)",
        'ALERTS{alertname=~"Kubensage.*"}',
    ),
)


def graph_url(prometheus: str, expr: str) -> str:
    query = urllib.parse.urlencode({"g0.expr": expr, "g0.tab": "0", "g0.range_input": "15m"})
    return f"{prometheus}/graph?{query}"


def missing_programs() -> list[str]:
    """Debian packages providing what is not installed."""
    packages = [pkg for program, pkg in PROGRAMS.items() if shutil.which(program) is None]
    if not BUSYBOX.exists():
        packages.append(PACKAGE_BUSYBOX)
    return sorted(set(packages))


def ensure_programs() -> None:
    """Install what is missing with apt as root; otherwise say what to do and stop."""
    if os.geteuid() != 0:
        sys.exit(
            "make demo needs root: it runs its own containerd and creates cgroups and mounts. "
            "Run it as root (sudo make demo)."
        )
    missing = missing_programs()
    if not missing:
        return
    if shutil.which("apt-get") is None:
        sys.exit(f"make demo needs {', '.join(missing)}; install them with your package manager.")
    print(f"installing {', '.join(missing)} with apt-get ...", flush=True)
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run(["apt-get", "update"], check=True, env=env, timeout=600)
    subprocess.run(
        ["apt-get", "install", "-y", "--no-install-recommends", *missing],
        check=True,
        env=env,
        timeout=1200,
    )
    if still := missing_programs():
        sys.exit(f"still missing after apt-get: {', '.join(still)}")


def announce(stack: DemoStack) -> None:
    assert stack.relay is not None and stack.prometheus is not None
    relay = f"http://127.0.0.1:{stack.relay.http}"
    prometheus = stack.prometheus.url
    lines = [
        "",
        "kubensage demo is running (Ctrl-C removes everything):",
        f"  fleet page:   {relay}/",
        f"  metrics:      {relay}/metrics",
        f"  prometheus:   {prometheus}/graph",
        f"  alerts:       {prometheus}/alerts",
        "",
        "pods in namespace demo:",
        *(f"  {pod.name}: {pod.behaviour}" for pod in DEMO_PODS),
        "",
        "queries (give them a minute or two to fill):",
    ]
    for title, expr in QUERIES:
        lines += [f"  {title}", f"    {graph_url(prometheus, expr)}"]
    print("\n".join(lines), flush=True)


def main() -> int:
    ensure_programs()
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    workdir = Path(tempfile.mkdtemp(prefix="kubensage-demo-", dir="/tmp"))
    stack = DemoStack(workdir)
    try:
        print("starting containerd and the demo pods ...", flush=True)
        stack.start_runtime()
        if not stop.is_set():
            print("starting relay, agent and prometheus ...", flush=True)
            stack.start_services()
            announce(stack)
        stop.wait()
    finally:
        print("stopping: pods, containerd, relay, agent, prometheus ...", flush=True)
        stack.stop()
        shutil.rmtree(workdir, ignore_errors=True)
        print("stopped; nothing left behind", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
