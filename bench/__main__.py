"""Run every benchmark once, print the table, write docs/benchmarks.md."""

from __future__ import annotations

import os
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path

from bench.advisor import advisor_benchmarks, failover
from bench.agent import agent_benchmarks, bundle_sizes
from bench.hostile import decoding, under_attack
from bench.relay import fleet_page, ingest, kube_cache, scrape
from bench.remote_write import remote_write
from bench.table import Results, write_markdown
from kubensage_common._version import VERSION as RELEASE
from kubensage_common.logsetup import configure_logging

REPO = Path(__file__).resolve().parent.parent


def main() -> None:
    if os.geteuid() != 0:
        sys.exit("make bench drives a private containerd and needs root")
    configure_logging("warning", "text", None)
    os.environ["KUBECONFIG"] = "/nonexistent/kubensage-bench/kubeconfig"
    arch = {"x86_64": "amd64", "aarch64": "arm64"}.get(platform.machine(), platform.machine())
    binary = REPO / "dist" / f"kubensage-agent-{RELEASE}-linux-{arch}" / "kubensage-agent"
    results = Results()
    started = time.perf_counter()
    workdir = Path(tempfile.mkdtemp(prefix="ksbench-", dir="/tmp"))
    try:
        print("agent (real containerd):", flush=True)
        agent_benchmarks(results, workdir, binary if binary.exists() else None)
        bundle_sizes(results, binary if binary.exists() else None)
        print("relay:", flush=True)
        ingest(results, workdir)
        decoding(results)
        under_attack(results, workdir)
        scrape(results, workdir)
        fleet_page(results, workdir)
        kube_cache(results, workdir)
        print("advisor:", flush=True)
        advisor_benchmarks(results, workdir)
        failover(results, workdir)
        print("remote write:", flush=True)
        remote_write(results, workdir)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    seconds = time.perf_counter() - started
    write_markdown(results, REPO / "docs" / "benchmarks.md", seconds)
    print(f"wrote docs/benchmarks.md ({seconds:.0f} s)")


main()
