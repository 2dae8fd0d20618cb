"""What bounded ingest costs, and what a hostile client costs the relay.

Decoding: the wire scan, the parse and the whole bounded decode of a full 110-container
report (every field set), in this process. Under attack: the relay's peak RSS and the ack
latency of well-behaved agents while another client keeps sending gzip bombs.
"""

from __future__ import annotations

import asyncio
import gzip
import os
import threading
import time
import timeit
from pathlib import Path

from bench.procstat import median
from bench.table import Results
from kubensage_api.telemetry import telemetry_pb2 as tm
from kubensage_lab.processes import RelayProcess, memory_kib
from relay.ingest.decode import DecodeLimits, MessageDecoder
from relay.ingest.limits import ReportLimits, enforce_limits
from relay.ingest.wirescan import build_plan, scan
from tests.support.hostile import (
    attack,
    hello_bytes,
    repeated_empty_pods,
    report_envelope,
)
from tests.support.load import percentile, run_load
from tests.support.reports import full_report

HOSTILE_AGENTS = int(os.environ.get("BENCH_HOSTILE_AGENTS", "10"))
HOSTILE_REPORTS = int(os.environ.get("BENCH_HOSTILE_REPORTS", "30"))
REPEAT = 200


def _per_call_ms(call: object) -> float:
    runs = timeit.repeat(call, number=REPEAT, repeat=5)  # type: ignore[arg-type]
    return median([r / REPEAT for r in runs]) * 1000


def decoding(results: Results) -> None:
    limits = DecodeLimits()
    decoder = MessageDecoder(limits)
    raw = tm.AgentMessage(report=full_report(containers=110)).SerializeToString()
    wire = gzip.compress(raw)
    plan = build_plan(tm.AgentMessage.DESCRIPTOR, limits.report)
    scanned = _per_call_ms(lambda: scan(raw, plan, limits.report.max_entries))
    parsed = _per_call_ms(lambda: tm.AgentMessage.FromString(raw))
    whole = _per_call_ms(lambda: decoder.decode(wire))
    cut_walk = (
        _per_call_ms(lambda: enforce_limits(tm.AgentMessage.FromString(raw), ReportLimits()))
        - parsed
    )
    note = f"{len(raw) / 1024:.0f} KiB, {len(wire) / 1024:.0f} KiB gzipped"
    results.add("relay", "decode a full 110-container report: wire scan", f"{scanned:.2f} ms", note)
    results.add("relay", "decode a full 110-container report: protobuf parse", f"{parsed:.2f} ms")
    results.add("relay", "decode a full 110-container report: gunzip+scan+parse", f"{whole:.2f} ms")
    results.add(
        "relay",
        "cut walk over every field (only for reports over a limit)",
        f"{cut_walk:.2f} ms",
    )


def under_attack(results: Results, workdir: Path) -> None:
    bomb = report_envelope(repeated_empty_pods(3_000_000))
    with RelayProcess(workdir, "hostile-relay", "--no-kube-enrichment") as relay:
        quiet = asyncio.run(run_load(relay.address, HOSTILE_AGENTS, HOSTILE_REPORTS, 110))
        stop, bombs = threading.Event(), [0]

        def keep_bombing() -> None:
            while not stop.is_set():
                attack(relay.address, [hello_bytes("evil-1", "evil"), bomb], gzip=True)
                bombs[0] += 1

        bomber = threading.Thread(target=keep_bombing, daemon=True)
        started = time.perf_counter()
        bomber.start()
        try:
            loud = asyncio.run(
                run_load(relay.address, HOSTILE_AGENTS, HOSTILE_REPORTS, 110, first_index=1000)
            )
        finally:
            stop.set()
            bomber.join(timeout=60)
        seconds = time.perf_counter() - started
        peak = memory_kib(relay.pid)["VmHWM"] / 1024
    for name, load in (("quiet", quiet), ("under gzip bombs", loud)):
        results.add(
            "relay",
            f"ack latency p50 / p99, {HOSTILE_AGENTS} agents, {name}",
            f"{percentile(load.ack_latencies, 0.5) * 1000:.0f} / "
            f"{percentile(load.ack_latencies, 0.99) * 1000:.0f} ms",
            f"{load.acked} acked, {len(load.errors)} errors",
        )
    results.add(
        "relay",
        "peak RSS under gzip bombs (6 MB of empty pods, ~6 KB each)",
        f"{peak:.0f} MiB",
        f"{bombs[0]} bombs in {seconds:.0f} s, all refused",
    )
    results.target(
        "relay peak RSS under bombs < 300 MiB", f"{peak:.0f} MiB", "met" if peak < 300 else "missed"
    )
