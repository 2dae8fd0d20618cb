"""Remote-write figures: a relay fed by simulated nodes writing to VictoriaMetrics, and
vmagent scraping the same series from a relay's /metrics into the same VictoriaMetrics.

Sizes come from the environment so the harness can be smoke-tested small:
BENCH_RW_NODES, BENCH_RW_CONTAINERS, BENCH_RW_INTERVAL (seconds), BENCH_RW_ROUNDS,
BENCH_RW_PROFILE and BENCH_RW_SCRAPES. Every simulated node reports as an agent with
every collector on does (`full_node_report`): the figures per sample are those of real
reports, whose containers carry the cgroup's figures besides CRI's.
"""

from __future__ import annotations

import asyncio
import os
import re
import time
from dataclasses import dataclass, field
from pathlib import Path

import grpc

from bench.procstat import cpu_seconds, rss_bytes
from bench.table import Results
from kubensage_api.telemetry import telemetry_pb2 as tm
from kubensage_api.telemetry import telemetry_pb2_grpc
from kubensage_lab.processes import RelayProcess, Service, free_port, http_get, scrape_sample
from relay.enrich.kube import NoEnrichment
from relay.export.encode import Encoding, encode_node
from relay.export.exporter import report_context
from relay.ingest.decode import DecodeLimits, MessageDecoder
from relay.series.profiles import parse_profiles
from tests.support.load import full_node_report, percentile, run_load, send_for_ack
from tests.support.tsdb import VictoriaMetrics

MIB = 1024 * 1024
NODES = int(os.environ.get("BENCH_RW_NODES", "2000"))
CONTAINERS = int(os.environ.get("BENCH_RW_CONTAINERS", "110"))
INTERVAL = float(os.environ.get("BENCH_RW_INTERVAL", "10"))
ROUNDS = int(os.environ.get("BENCH_RW_ROUNDS", "6"))
PROFILE = os.environ.get("BENCH_RW_PROFILE", "native")
SCRAPES = int(os.environ.get("BENCH_RW_SCRAPES", "3"))
NODES_PER_CONNECTION = 50
SHARED = "generator, relay, VictoriaMetrics and vmagent share the machine's cores"
RELAY_FLAGS = (
    "--no-kube-enrichment",
    "--metric-profile",
    PROFILE,
    "--node-grace-period",
    "3600",
    "--max-connection-age",
    "0",
    "--log-level",
    "warning",
)


def relay_value(url: str, name: str, labels: str = "") -> float:
    return scrape_sample(url, name, labels, timeout=60) or 0.0


@dataclass
class Paced:
    acked: int = 0
    late_rounds: int = 0
    errors: list[str] = field(default_factory=list)
    ack_latencies: list[float] = field(default_factory=list)


async def _paced_agent(channel: grpc.aio.Channel, index: int, start: float, result: Paced) -> None:
    """One node: a report every interval on a shared grid, each acknowledged before the next."""
    node, agent_id = f"rw-node-{index:05d}", f"rw-agent-{index:05d}"
    template = full_node_report(node, agent_id, 1, CONTAINERS)
    template.health.interval_seconds = INTERVAL
    offset = (index / max(NODES, 1)) * INTERVAL  # nodes spread over the interval, as in life
    call = telemetry_pb2_grpc.IngestStub(channel).Stream()  # type: ignore[call-arg]
    await call.write(tm.AgentMessage(hello=tm.Hello(agent_id=agent_id, node_name=node)))
    for round_index in range(ROUNDS):
        due = start + offset + round_index * INTERVAL
        delay = due - time.time()
        if delay > 0:
            await asyncio.sleep(delay)
        elif delay < -INTERVAL:
            result.late_rounds += 1  # the relay held acks back longer than an interval
        template.sequence = round_index + 1
        template.collected_at_unix_nanos = time.time_ns()
        _, latency = await send_for_ack(call, template)
        result.ack_latencies.append(latency)
        result.acked += 1
    await call.done_writing()
    await call.code()


async def _feed_paced(address: str) -> Paced:
    """Every node at once; NODES_PER_CONNECTION streams share a connection (file limits)."""
    result = Paced()
    start = time.time() + 2
    channels = [grpc.aio.insecure_channel(address) for _ in range(0, NODES, NODES_PER_CONNECTION)]

    async def guarded(index: int) -> None:
        try:
            await _paced_agent(channels[index // NODES_PER_CONNECTION], index, start, result)
        except (grpc.aio.AioRpcError, RuntimeError) as exc:
            result.errors.append(f"node {index}: {exc}")

    budget = ROUNDS * INTERVAL * 4 + 120
    try:
        await asyncio.wait_for(asyncio.gather(*(guarded(i) for i in range(NODES))), budget)
    finally:
        for channel in channels:
            await channel.close()
    return result


def stages_alone(results: Results, reports: int = 200) -> int:
    """The relay's two per-report stages on one thread, with nothing else on the
    machine's cores: the decode every relay does (wire scan, then parse) and the series
    walk and encoding that remote write adds. What a relay spends beyond them is
    gRPC, the queue and sending. Returns the samples of one report."""
    encoding = Encoding({})
    profiles = parse_profiles(PROFILE)
    decoder = MessageDecoder(DecodeLimits())
    wire = [
        tm.AgentMessage(
            report=full_node_report(f"enc-node-{i:05d}", f"enc-agent-{i:05d}", 1, CONTAINERS)
        ).SerializeToString()
        for i in range(reports)
    ]
    samples, decoding, encoding_used = 0, 0.0, 0.0
    for data in wire:
        started = time.thread_time()
        report = decoder.decode(data).message.report
        decoded = time.thread_time()
        encoded = encode_node(profiles, report_context(report, NoEnrichment()), encoding)
        encoded.digests()  # what the exporter keeps of each report for staleness markers
        decoding += decoded - started
        encoding_used += time.thread_time() - decoded
        samples += len(encoded.series)
    shape = f"{samples // reports:,} samples per report of {CONTAINERS} containers, {PROFILE}"
    results.add(
        "remote write",
        "relay ingest decode alone (wire scan + parse), one thread",
        f"{decoding / samples * 1e6:.2f} us/sample",
        f"{len(wire[0]):,} bytes per report; {reports} reports in {decoding:.2f} CPU s",
    )
    results.add(
        "remote write",
        "relay series walk + encoding alone, one thread",
        f"{encoding_used / samples * 1e6:.2f} us/sample",
        f"{shape}; {reports} reports in {encoding_used:.2f} CPU s",
    )
    return samples // reports


def remote_write(results: Results, workdir: Path) -> None:
    """The relay alone, remote-write only, at the fleet's pace; then vmagent for comparison."""
    per_report = stages_alone(results)
    vm = VictoriaMetrics(workdir, "bench-victoria-metrics").start_serving()
    try:
        relay_cpu_per_sample = _relay_remote_write(results, workdir, vm)
        vmagent_cpu_per_sample = _vmagent_scrape(results, workdir, vm, relay_cpu_per_sample)
    finally:
        vm.stop()
    offered = NODES * per_report / INTERVAL
    results.add(
        "remote write",
        f"cores {NODES} nodes' samples need at the relay's / vmagent's CPU per sample",
        f"{offered * relay_cpu_per_sample:.2f} / {offered * vmagent_cpu_per_sample:.2f}",
        f"{offered:,.0f} samples/s offered, on a machine of {os.cpu_count()} cores that also "
        "runs the generator and VictoriaMetrics",
    )


def _relay_remote_write(results: Results, workdir: Path, vm: VictoriaMetrics) -> float:
    """Returns the relay's CPU seconds per sample written."""
    url = vm.write_url
    label = f'{{url="{url}"}}'
    with RelayProcess(
        workdir,
        "rw-relay",
        *RELAY_FLAGS,
        "--remote-write-url",
        url,
        "--no-expose-node-series",
        "--remote-write-queue-dir",
        str(workdir / "rw-queue"),
    ) as relay:
        metrics = relay.metrics_url
        assert vm.process is not None
        cpu_before, started = cpu_seconds(relay.pid), time.perf_counter()
        generator_before, vm_before = time.process_time(), cpu_seconds(vm.process.pid)
        rss_peak, backlog = 0, []

        async def sample_while_feeding() -> Paced:
            nonlocal rss_peak
            feeding = asyncio.create_task(_feed_paced(relay.address))
            while not feeding.done():
                await asyncio.sleep(INTERVAL)
                rss_peak = max(rss_peak, rss_bytes(relay.pid))
                queued = await asyncio.to_thread(
                    relay_value, metrics, "kubensage_relay_remote_write_queue_samples", label
                )
                backlog.append(queued)
            return await feeding

        paced = asyncio.run(sample_while_feeding())
        fed_seconds = time.perf_counter() - started
        relay_cores = (cpu_seconds(relay.pid) - cpu_before) / fed_seconds
        generator_cores = (time.process_time() - generator_before) / fed_seconds
        vm_cores = (cpu_seconds(vm.process.pid) - vm_before) / fed_seconds
        drain_started = time.perf_counter()
        while relay_value(metrics, "kubensage_relay_remote_write_queue_samples", label) > 0:
            if time.perf_counter() - drain_started > 600:
                raise RuntimeError("remote-write queue did not drain")
            time.sleep(0.5)
        used = cpu_seconds(relay.pid) - cpu_before
        sent = relay_value(
            metrics, "kubensage_relay_remote_write_samples_total", f'{{outcome="sent",url="{url}"}}'
        )
        wall = time.perf_counter() - started
    offered = NODES * ROUNDS
    shape = f"{NODES} nodes x {CONTAINERS} containers, {PROFILE}, every {INTERVAL:g} s"
    results.add(
        "remote write",
        f"relay -> VictoriaMetrics: {shape}",
        f"{sent / wall:,.0f} samples/s",
        f"{paced.acked}/{offered} reports acked, {len(paced.errors)} errors, "
        f"{paced.late_rounds} reports later than one interval; {sent:,.0f} samples in {wall:.0f} s",
    )
    results.add(
        "remote write",
        "relay samples per relay CPU-second",
        f"{sent / used:,.0f}" if used else "n/a",
        f"relay used {used:.1f} CPU s ({used / wall:.2f} cores); {SHARED}",
    )
    results.add(
        "remote write",
        "relay RSS peak / disk-queue backlog over the run",
        f"{rss_peak / MIB:.0f} MiB",
        "queued samples per interval: " + ", ".join(f"{q:,.0f}" for q in backlog),
    )
    results.add(
        "remote write",
        "cores used while the nodes were fed: relay / generator / VictoriaMetrics",
        f"{relay_cores:.2f} / {generator_cores:.2f} / {vm_cores:.2f}",
        f"of the machine's {os.cpu_count()}; the relay's Python threads share one interpreter lock",
    )
    results.add(
        "remote write",
        "ack latency p50 / p99 (report queued for remote write)",
        f"{percentile(paced.ack_latencies, 0.5) * 1000:.0f} / "
        f"{percentile(paced.ack_latencies, 0.99) * 1000:.0f} ms",
        f"fed for {fed_seconds:.0f} s",
    )
    results.target(
        f"keeps up with {NODES} nodes x {CONTAINERS} containers every {INTERVAL:g} s",
        f"{paced.acked}/{offered} on time"
        if not paced.late_rounds
        else f"{paced.late_rounds} late",
        "met" if not paced.late_rounds and paced.acked == offered else "missed",
    )
    return used / sent if sent else 0.0


def _vmagent_scrape(
    results: Results, workdir: Path, vm: VictoriaMetrics, relay_per_sample: float
) -> float:
    """vmagent scraping a relay's /metrics (the same series) and writing them to VM.
    Returns vmagent's CPU seconds per sample written, 0 when not measured."""
    with RelayProcess(workdir, "scrape-relay-for-vmagent", *RELAY_FLAGS) as relay:
        for start in range(0, NODES, 500):
            load = asyncio.run(
                run_load(
                    relay.address,
                    min(500, NODES - start),
                    1,
                    CONTAINERS,
                    first_index=start,
                    end_cleanly=False,
                    make_report=full_node_report,
                )
            )
            if load.errors:
                raise RuntimeError(f"feeding failed: {load.errors[:3]}")
        started = time.perf_counter()
        body = http_get(relay.metrics_url, timeout=600)[1]
        render = time.perf_counter() - started
        per_scrape = sum(1 for line in body.splitlines() if line and not line.startswith("#"))
        interval = max(INTERVAL, 2 * render + 5)  # a scrape must fit in its interval
        config = workdir / "vmagent.yml"
        config.write_text(
            "scrape_configs:\n"
            "  - job_name: kubensage-relay\n"
            f"    scrape_interval: {interval:.0f}s\n"
            f"    scrape_timeout: {interval:.0f}s\n"
            f"    static_configs: [{{targets: ['127.0.0.1:{relay.http}']}}]\n"
        )
        port = free_port()
        vmagent = Service(
            "vmagent",
            [
                "vmagent",
                f"-promscrape.config={config}",
                f"-remoteWrite.url={vm.write_url}",
                f"-remoteWrite.tmpDataPath={workdir / 'vmagent-data'}",
                # vmagent refuses bodies over 16 MiB by default; a fleet's page is far larger,
                # and streaming is what vmagent's docs prescribe for targets of that size
                f"-promscrape.maxScrapeSize={2 * len(body.encode())}",
                "-promscrape.streamParse",
                f"-httpListenAddr=127.0.0.1:{port}",
                "-loggerLevel=ERROR",
            ],
            workdir,
        )
        vmagent.start().wait_http(f"http://127.0.0.1:{port}/health")
        try:
            assert vmagent.process is not None
            agent_cpu, relay_cpu = cpu_seconds(vmagent.process.pid), cpu_seconds(relay.pid)
            time.sleep(interval * SCRAPES + 2)
            agent_metrics = _vmagent_drained(f"http://127.0.0.1:{port}/metrics", interval)
            agent_used = cpu_seconds(vmagent.process.pid) - agent_cpu
            relay_used = cpu_seconds(relay.pid) - relay_cpu
        finally:
            vmagent.stop()
    # what vmagent really handed to remote write, never a figure assumed from the page size
    written = _sum(agent_metrics, "vmagent_remotewrite_global_rows_pushed_before_relabel_total")
    failed = _sum(agent_metrics, "vm_promscrape_scrapes_failed_total")
    measure = (
        f"vmagent scraping the relay's /metrics ({NODES} nodes, {per_scrape:,} samples/scrape)"
    )
    note = (
        f"samples per vmagent CPU-second ({written:,.0f} written, {failed:.0f} scrapes failed); "
        f"the relay spent {relay_used:.1f} CPU s serving {SCRAPES} scrapes (render "
        f"{render:.1f} s); scrape every {interval:.0f} s; {SHARED}"
    )
    goal = "relay CPU per remote-written sample <= vmagent's"
    if not written or not agent_used:
        results.add("remote write", measure, "n/a", note)
        results.target(goal, f"{relay_per_sample * 1e6:.2f} us vs n/a", "not measured")
        return 0.0
    results.add("remote write", measure, f"{written / agent_used:,.0f}", note)
    vmagent_per_sample = agent_used / written
    results.target(
        goal,
        f"{relay_per_sample * 1e6:.2f} vs {vmagent_per_sample * 1e6:.2f} us",
        "met" if relay_per_sample <= vmagent_per_sample else "missed",
    )
    return vmagent_per_sample


def _vmagent_drained(metrics_url: str, within: float) -> str:
    """vmagent's /metrics once its remote-write queue is empty (or `within` seconds passed),
    so the CPU counted includes sending what it scraped."""
    deadline = time.monotonic() + within
    while True:
        page = http_get(metrics_url)[1]
        if _sum(page, "vmagent_remotewrite_pending_data_bytes") == 0 or time.monotonic() > deadline:
            return page
        time.sleep(1)


def _sum(metrics: str, name: str) -> float:
    return sum(
        float(match)
        for match in re.findall(
            rf"^{re.escape(name)}(?:\{{[^}}]*\}})? (\S+)$", metrics, re.MULTILINE
        )
    )
