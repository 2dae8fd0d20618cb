"""Remote write with real processes: agent, relays, VictoriaMetrics and Prometheus.

What a user looks at is the receiver's data: after a relay outage the spooled
reports must fill the gap there, a SIGKILLed relay's disk queue must arrive once,
and relays behind a balancer must share agents after a scale-out without serving a
moving node twice.
"""

from __future__ import annotations

import asyncio
import itertools
import re
import signal
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from kubensage_agent.push.queue import ReportQueue
from kubensage_agent.push.stream import StreamSender
from kubensage_api.telemetry import telemetry_pb2 as tm
from kubensage_lab.containerd import Containerd
from kubensage_lab.cri_driver import CriDriver
from kubensage_lab.processes import (
    RelayProcess,
    Service,
    agent_service,
    eventually,
    free_port,
    http_get,
    scrape_sample,
)
from tests.conftest import require
from tests.support.balancer import RoundRobinBalancer
from tests.support.load import run_load
from tests.support.receiver import Script, ScriptedReceiver
from tests.support.reports import report
from tests.support.tsdb import PrometheusReceiver, VictoriaMetrics

OUTAGE_SECONDS = 60
INTERVAL = 1.0
HIGHEST = "kubensage_relay_remote_write_highest_sent_timestamp_seconds"


def metric(metrics_url: str, name: str, **labels: str) -> float:
    """One sample of a relay's /metrics (0 when absent)."""
    wanted = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    return scrape_sample(metrics_url, name, f"{{{wanted}}}" if labels else "") or 0.0


def agent(workdir: Path, relay: str, node: str, cri: str, state: Path) -> Service:
    return agent_service(
        workdir,
        node,
        relay,
        *("--interval", str(INTERVAL), "--spool", "--flush-timeout", "10", "--cri-socket", cri),
        state_dir=state,
    )


def raw_samples(
    db: VictoriaMetrics | PrometheusReceiver, selector: str, since: float
) -> list[tuple[float, float]]:
    """One series' samples since `since` as stored (no query step): (time, value)."""
    now = time.time()
    result = db.query(f"{selector}[{int(now - since) + 1}s]", at=now)
    assert len(result) == 1, result
    return [(float(t), float(v)) for t, v in result[0]["values"]]


def raw_times(db: VictoriaMetrics | PrometheusReceiver, selector: str, since: float) -> list[float]:
    return [t for t, _ in raw_samples(db, selector, since)]


def newest(db: VictoriaMetrics | PrometheusReceiver, selector: str) -> float:
    result = db.query(f"timestamp({selector})")
    return float(result[0]["value"][1]) if result else 0.0


@dataclass
class Coverage:
    """What a receiver holds of one node over a window."""

    samples: int  # of the container series
    reports: int  # of the node's sequence series (one per report)
    lost_reports: int  # sequence numbers missing between consecutive samples
    holes: list[float]  # stretches over two intervals the agent did collect in


def coverage(
    container: list[float], sequences: list[tuple[float, float]], start: float, end: float
) -> Coverage:
    """A stretch longer than two intervals is a hole unless the agent made no report in it
    (consecutive sequence numbers on both sides: a loaded machine can skip a tick)."""
    sequence_at = dict(sequences)
    around = [t for t in container if start - 10 <= t <= end + 10]
    holes = []
    for before, after in itertools.pairwise([start - 10, *around, end + 10]):
        if after < start or before > end or after - before <= 2 * INTERVAL + 0.5:
            continue
        made = sequence_at.get(after, 0) - sequence_at.get(before, -10)
        if made != 1:
            holes.append(after - before)
    in_window = sorted(v for t, v in sequences if start <= t <= end)
    lost = sum(int(b - a - 1) for a, b in itertools.pairwise(in_window))
    samples = sum(1 for t in container if start <= t <= end)
    return Coverage(samples, len(in_window), lost, holes)


@pytest.fixture
def receivers(tmp_path: Path) -> Iterator[tuple[VictoriaMetrics, PrometheusReceiver]]:
    require(VictoriaMetrics.present(), "victoria-metrics (Debian package) for remote write")
    require(PrometheusReceiver.present(), "prometheus (Debian package) for remote write")
    vm, prometheus = VictoriaMetrics(tmp_path), PrometheusReceiver(tmp_path)
    try:
        vm.start_serving()
        prometheus.start_serving()
        yield vm, prometheus
    finally:
        vm.stop()
        prometheus.stop()


@pytest.mark.slow
def test_a_relay_outage_leaves_no_gap_in_the_receivers(
    tmp_path: Path,
    receivers: tuple[VictoriaMetrics, PrometheusReceiver],
    containerd: Containerd,
    driver: CriDriver,
) -> None:
    vm, prometheus = receivers
    pod = driver.run_pod("rw-pod", namespace="rw")  # a kubelet-style cgroup parent
    driver.run_container(pod, "rw-sleeper", "sleep 100000")
    grpc_port, http_port = free_port(), free_port()

    def relay(name: str) -> RelayProcess:
        return RelayProcess(
            tmp_path,
            name,
            "--remote-write-url",
            vm.write_url,
            "--remote-write-url",
            prometheus.write_url,
            "--external-label",
            "cluster=it",
            grpc_port=grpc_port,
            metrics_port=http_port,
        )

    first = relay("relay-a").start()
    the_agent = agent(tmp_path, first.address, "rw-node", containerd.endpoint, tmp_path / "state")
    the_agent.start()
    second = None
    selector = 'kubensage_container_cpu_usage_seconds_total{container="rw-sleeper",cluster="it"}'
    try:
        for db in receivers:
            eventually(lambda db=db: db.query(selector), timeout=60)
        time.sleep(5)
        assert first.stop() == 0
        down_from = time.time()
        time.sleep(OUTAGE_SECONDS)
        second = relay("relay-b").start()
        up_at = time.time()
        for db in receivers:
            eventually(
                lambda db=db: metric(second.metrics_url, HIGHEST, url=db.write_url) > up_at + 2,
                timeout=90,
            )
        for db in receivers:  # the receiver shows data past the window (it may buffer a little)
            eventually(lambda db=db: newest(db, selector) >= up_at + 6, timeout=90)
        written = metric(
            second.metrics_url, "kubensage_relay_remote_write_reports_total", outcome="written"
        )
        failed = [
            metric(
                second.metrics_url,
                "kubensage_relay_remote_write_samples_total",
                url=db.write_url,
                outcome="failed",
            )
            for db in receivers
        ]
        sequence = 'kubensage_relay_node_last_sequence{node="rw-node",cluster="it"}'
        held = {
            type(db).__name__: coverage(
                raw_times(db, selector, down_from - 30),
                raw_samples(db, sequence, down_from - 30),
                down_from - 5,
                up_at + 5,
            )
            for db in receivers
        }
    finally:
        the_agent.stop()
        if second is not None:
            second.stop()
        first.stop()
        driver.remove_pod(pod)
    print(f"relay down {up_at - down_from:.0f} s; relay B wrote {written:.0f} reports; {held}")
    assert written >= OUTAGE_SECONDS - 5  # the backlog went out through relay B
    assert failed == [0, 0]
    for name, seen in held.items():
        assert seen.lost_reports == 0, name  # every report the agent made is there
        # each with the container's sample (a CRI call timing out on a loaded machine costs
        # a report its container figures, by design, so allow for one or two)
        assert seen.samples >= seen.reports - 2, name
        assert seen.holes == [], name  # and no stretch the agent collected in is empty
        assert seen.reports >= (up_at - down_from) / 2, name


@pytest.mark.slow
def test_a_killed_relay_sends_its_disk_queue_after_restart_and_nothing_twice(
    tmp_path: Path,
) -> None:
    require(VictoriaMetrics.present(), "victoria-metrics (Debian package) for remote write")
    vm = VictoriaMetrics(tmp_path)
    grpc_port, http_port = free_port(), free_port()
    queue_dir = tmp_path / "queue"
    with ScriptedReceiver() as recorder:
        recorder.always(Script(503, body=b"receiver starting"))

        def relay(name: str) -> RelayProcess:
            return RelayProcess(
                tmp_path,
                name,
                "--remote-write-url",
                vm.write_url,
                "--remote-write-url",
                recorder.url,
                "--remote-write-queue-dir",
                str(queue_dir),
                grpc_port=grpc_port,
                metrics_port=http_port,
            )

        first = relay("relay-a").start()
        the_agent = agent(
            tmp_path, first.address, "kill-node", f"unix://{tmp_path}/none.sock", tmp_path / "state"
        )
        the_agent.start()
        second = None
        try:
            written = "kubensage_relay_remote_write_reports_total"
            eventually(lambda: metric(first.metrics_url, written, outcome="written") >= 8, 60)
            queued = metric(
                first.metrics_url, "kubensage_relay_remote_write_queue_samples", url=vm.write_url
            )
            assert queued > 0 and recorder.taken() == []
            first.service.stop(signal.SIGKILL)
            killed_at = time.time()
            vm.start_serving()
            recorder.always(Script(204))
            second = relay("relay-b").start()
            eventually(
                lambda: metric(second.metrics_url, HIGHEST, url=vm.write_url) > killed_at + 3, 90
            )
            assert the_agent.stop() == 0  # flushes what it still holds
            for url in (vm.write_url, recorder.url):
                eventually(
                    lambda url=url: (
                        metric(
                            second.metrics_url,
                            "kubensage_relay_remote_write_queue_samples",
                            url=url,
                        )
                        == 0
                    ),
                    60,
                )
            duplicates = metric(second.metrics_url, written, outcome="duplicate")
            last_sequence = int((tmp_path / "state" / "sequence").read_text())
            times = raw_times(vm, 'kubensage_node_load1{node="kill-node"}', killed_at - 600)
        finally:
            the_agent.stop()
            if second is not None:
                second.stop()
            first.stop()
            vm.stop()
        recorded = sorted(
            s.samples[0].timestamp
            for s in recorder.taken()
            if {(label.name, label.value) for label in s.labels}
            >= {("__name__", "kubensage_node_load1"), ("node", "kill-node")}
        )
    print(
        f"{queued:.0f} samples queued at SIGKILL; after restart VictoriaMetrics holds "
        f"{len(times)} samples of the node's load, the recording receiver {len(recorded)} "
        f"({len(set(recorded))} distinct); {duplicates:.0f} resent reports dropped as duplicates"
    )
    assert len(recorded) == len(set(recorded))  # none twice
    assert len(times) == len(set(times)) == len(recorded)
    # every report the agent made reached the receivers (sequences are reserved in blocks,
    # so the last reserved number bounds what was produced)
    assert 0 < len(recorded) <= last_sequence
    assert recorded[0] / 1000 < killed_at - 5  # the queue written before the kill arrived


class SimulatedAgent:
    """The agent's real stream code (StreamSender) with reports made every interval."""

    def __init__(self, address: str, node: str) -> None:
        self.node = node
        self.queue = ReportQueue(1000)
        self.sequence = 0
        self.sender = StreamSender(
            address,
            lambda: tm.Hello(agent_id=f"agent-{node}", node_name=node),
            self.queue,
            on_settings=lambda settings: None,
            max_message_bytes=4 * 1024 * 1024,
        )

    async def produce(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            self.sequence += 1
            made = report(node=self.node, sequence=self.sequence, agent_id=f"agent-{self.node}")
            made.health.interval_seconds = INTERVAL
            self.queue.put(made)
            await asyncio.sleep(INTERVAL)


def nodes_served(url: str) -> set[str]:
    body = http_get(url)[1]
    return set(re.findall(r'^kubensage_node_load1\{node="([^"]+)"', body, re.MULTILINE))


@pytest.mark.slow
def test_agents_spread_over_a_new_replica_and_no_node_is_served_twice(tmp_path: Path) -> None:
    max_age = 8.0
    options = ("--max-connection-age", str(max_age), "--node-grace-period", "60")
    with (
        RoundRobinBalancer() as balancer,
        RelayProcess(tmp_path, "relay-1", *options) as one,
    ):
        balancer.add("127.0.0.1", one.grpc)
        agents = [SimulatedAgent(balancer.address, f"spread-{i:02d}") for i in range(20)]
        connected = "kubensage_relay_connected_agents"
        overlaps: dict[str, list[float]] = {}

        async def scenario() -> list[tuple[float, float, float]]:
            stop = asyncio.Event()
            tasks = [asyncio.create_task(a.sender.run()) for a in agents]
            tasks += [asyncio.create_task(a.produce(stop)) for a in agents]
            try:
                await asyncio.to_thread(
                    eventually, lambda: metric(one.metrics_url, connected) == 20, 60
                )
                with RelayProcess(tmp_path, "relay-2", *options) as two:
                    balancer.add("127.0.0.1", two.grpc)
                    deadline = time.monotonic() + 3 * max_age + 10
                    spread: list[tuple[float, float, float]] = []  # when, held by 1, by 2
                    while time.monotonic() < deadline:
                        seen = await asyncio.gather(
                            asyncio.to_thread(nodes_served, one.metrics_url),
                            asyncio.to_thread(nodes_served, two.metrics_url),
                        )
                        now = time.monotonic()
                        for node in seen[0] & seen[1]:
                            overlaps.setdefault(node, []).append(now)
                        held = (
                            metric(one.metrics_url, connected),
                            metric(two.metrics_url, connected),
                        )
                        spread.append((now, *held))
                        await asyncio.sleep(0.2)
                    return spread
            finally:
                stop.set()
                for agent in agents:
                    await agent.sender.flush_and_close(5)
                for task in tasks:
                    task.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)

        spread = asyncio.run(scenario())
        rotated = metric(one.metrics_url, "kubensage_relay_streams_rotated_total")
    runs = {node: max(run[-1] - run[0] for run in _runs(times)) for node, times in overlaps.items()}
    # an agent between two streams is held by neither for a moment: judged over the last
    # max age, both relays must hold agents while all 20 are held
    ended = spread[-1][0]
    settled = [(first, second) for when, first, second in spread if when >= ended - max_age]
    both = [held for held in settled if min(held) > 0 and sum(held) == 20]
    print(
        f"in the last {max_age:.0f} s relay 1 and relay 2 held {settled} agents; "
        f"relay 1 rotated {rotated:.0f} streams; nodes seen on both at once: {len(overlaps)}, "
        f"longest such stretch {max(runs.values(), default=0):.2f} s"
    )
    assert both, settled
    assert rotated >= 20
    assert all(stretch <= INTERVAL for stretch in runs.values()), runs
    unacked = [len(a.queue) for a in agents]
    assert unacked == [0] * 20  # every report of every agent was acknowledged


def _runs(times: list[float], gap: float = 0.6) -> list[list[float]]:
    """Consecutive observations (polls ~0.2-0.5 s apart) grouped into stretches."""
    stretches: list[list[float]] = []
    for t in times:
        if stretches and t - stretches[-1][-1] <= gap:
            stretches[-1].append(t)
        else:
            stretches.append([t])
    return stretches


def test_a_remote_write_only_relay_serves_its_own_health_and_not_the_nodes(tmp_path: Path) -> None:
    with ScriptedReceiver() as receiver:
        args = ("--remote-write-url", receiver.url, "--no-expose-node-series")
        with RelayProcess(tmp_path, "relay-rw-only", *args) as relay:
            result = asyncio.run(
                run_load(relay.address, agents=2, reports=2, containers=3, end_cleanly=False)
            )
            assert result.errors == [] and result.acked == 4
            sent = "kubensage_relay_remote_write_samples_total"
            eventually(lambda: metric(relay.metrics_url, sent, outcome="sent", url=receiver.url))
            body = http_get(relay.metrics_url)[1]
            health = http_get(f"http://127.0.0.1:{relay.http}/healthz")[0]
    names = {s.labels[0].value for s in receiver.taken()}
    assert "kubensage_container_cpu_usage_seconds_total" in names
    assert health == 200
    assert "kubensage_relay_reports_received_total 4.0" in body
    assert "kubensage_node_" not in body and "kubensage_container_" not in body
