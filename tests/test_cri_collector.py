"""The CRI collector against fake runtimes with the quirks of CRI-O, cri-dockerd and broken ones."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import grpc
import pytest

from kubensage_agent.collectors.cri import MAX_ANNOTATION_VALUE, CriCollector
from kubensage_agent.collectors.errors import CollectorErrors
from kubensage_agent.collectors.node import NodeCollector
from kubensage_agent.collectors.stats_policy import StatsPolicy
from kubensage_agent.cri.client import CriClient
from kubensage_agent.hostfs import HostPaths
from kubensage_agent.report import ReportBuilder, RuntimeLink
from kubensage_api.cri import api_pb2
from kubensage_api.telemetry import telemetry_pb2 as tm
from tests.support.fake_cri import NANOS, FakeContainer, FakeCriServer, FakeRuntime

REAL = Path(__file__).parent / "fixtures" / "debian12-hybrid"
TIMEOUT = 2.0


def serve(sock_dir: Path, runtime: FakeRuntime) -> FakeCriServer:
    return FakeCriServer(sock_dir / "cri.sock", runtime)


# the runtime's figures every cycle whatever its answers cost: these tests are about
# what the answers carry (tests/test_cri_calls.py is about which calls are made)
EVERY_CYCLE = StatsPolicy(cri_stats_interval=0)


def collector_for(
    server: FakeCriServer, root: Path = Path("/"), policy: StatsPolicy = EVERY_CYCLE
) -> CriCollector:
    return CriCollector(
        CriClient(server.endpoint, TIMEOUT), HostPaths(root), CollectorErrors(), policy=policy
    )


def two_cycles(collector: CriCollector, runtime: FakeRuntime) -> list[tm.Pod]:
    collector.collect(time.monotonic() + TIMEOUT)
    for container in runtime.containers:
        container.usage_ns += NANOS // 2
    time.sleep(0.05)
    pods, _ = collector.collect(time.monotonic() + TIMEOUT)
    return pods


def containerd_like() -> FakeRuntime:
    runtime = FakeRuntime(name="containerd", version="1.6.20")
    runtime.add_pod("s1", "web-1", "shop")
    runtime.containers = [
        FakeContainer(
            "c1", "s1", "app", usage_ns=5 * NANOS, memory_limit=256 * 1024**2, cpu_quota=50_000
        ),
        FakeContainer("c2", "s1", "crashed", state=api_pb2.CONTAINER_EXITED),
    ]
    return runtime


def test_pods_containers_and_stats_are_reported(sock_dir: Path) -> None:
    runtime = containerd_like()
    with serve(sock_dir, runtime) as server:
        collector = collector_for(server)
        pods = two_cycles(collector, runtime)
        _, image_fs = collector.collect(time.monotonic() + TIMEOUT)
    (pod,) = pods
    assert (pod.name, pod.namespace, pod.uid, pod.labels["app"]) == (
        "web-1",
        "shop",
        "uid-s1",
        "web-1",
    )
    assert pod.state == tm.POD_STATE_READY
    assert list(pod.ips) == ["10.0.0.7"]
    assert len(pod.annotations["big"]) == MAX_ANNOTATION_VALUE
    assert pod.network_source == "cri"
    assert pod.network[0].name == "eth0" and pod.network[0].transmit_bytes == 2000
    assert not pod.network[0].HasField("receive_packets")  # CRI does not give packets
    containers = {c.name: c for c in pod.containers}
    app = containers["app"]
    assert app.state == tm.CONTAINER_STATE_RUNNING
    assert app.cpu.usage_seconds_total == pytest.approx(5.5)
    assert app.cpu.HasField("usage_cores") and app.cpu.rate_source == "computed"
    assert app.memory.working_set_bytes == 10 * 1024 * 1024
    assert app.limits.memory_bytes == 256 * 1024**2
    assert app.limits.cpu_cores == pytest.approx(0.5)
    crashed = containers["crashed"]
    assert crashed.state == tm.CONTAINER_STATE_EXITED
    assert (crashed.exit_code, crashed.reason) == (137, "OOMKilled")
    assert not crashed.cpu.HasField("usage_seconds_total")
    assert image_fs[0].used_bytes == 5 * 1024**3


def test_first_sample_has_no_rate_and_status_is_fetched_once(sock_dir: Path) -> None:
    runtime = containerd_like()
    with serve(sock_dir, runtime) as server:
        collector = collector_for(server)
        pods, _ = collector.collect(time.monotonic() + TIMEOUT)
        assert not pods[0].containers[0].cpu.HasField("usage_cores")
        for _ in range(3):
            collector.collect(time.monotonic() + TIMEOUT)
    assert runtime.calls.count("ContainerStatus") == 2  # one per container, then cached
    assert runtime.calls.count("PodSandboxStatus") == 1


def test_cri_o_style_runtime_rate_and_psi_are_taken_from_cri(sock_dir: Path) -> None:
    runtime = FakeRuntime(name="cri-o", version="1.29.1")
    runtime.add_pod("s1", "db-0")
    runtime.containers = [
        FakeContainer("c1", "s1", "postgres", usage_ns=NANOS, nano_cores=250_000_000, psi=True)
    ]
    with serve(sock_dir, runtime) as server:
        pods, _ = collector_for(server).collect(time.monotonic() + TIMEOUT)
    container = pods[0].containers[0]
    assert container.cpu.usage_cores == pytest.approx(0.25)
    assert container.cpu.rate_source == "runtime"
    pressure = {p.resource: p for p in container.pressure}
    assert set(pressure) == {"cpu", "memory", "io"}
    assert pressure["cpu"].some.total_seconds == pytest.approx(2.0)
    assert pressure["cpu"].full.avg10 == pytest.approx(1.5)


SANDBOX_PID = 4242


def give_sandbox_netns(root: Path, *, host_network: bool) -> None:
    """Sandbox SANDBOX_PID under host root `root`, in its own network namespace or the
    host's, with the host's /proc/net/dev as its interfaces."""
    sandbox = root / "proc" / str(SANDBOX_PID)
    (sandbox / "net").mkdir(parents=True)
    shutil.copy(REAL / "proc" / "net" / "dev", sandbox / "net" / "dev")
    for process in ("1", "self", str(SANDBOX_PID)):
        (root / "proc" / process / "ns").mkdir(parents=True, exist_ok=True)
    (root / "proc" / "1" / "ns" / "net").write_text("host netns")
    (root / "proc" / "self" / "ns" / "net").write_text("the agent's netns")
    sandbox_ns = sandbox / "ns" / "net"
    if host_network:
        sandbox_ns.hardlink_to(root / "proc" / "1" / "ns" / "net")  # same inode
    else:
        sandbox_ns.write_text("pod netns")


def fake_host(root: Path, *, host_network: bool) -> Path:
    """A host root where sandbox SANDBOX_PID has its own network namespace, or the host's."""
    shutil.copytree(REAL, root)
    give_sandbox_netns(root, host_network=host_network)
    return root


def test_pod_network_is_read_from_procfs_without_asking_the_runtime(sock_dir: Path) -> None:
    runtime = FakeRuntime(name="containerd", version="1.6.20", sandbox_pid=SANDBOX_PID)
    runtime.add_pod("s1", "web")
    runtime.containers = [FakeContainer("c1", "s1", "app")]
    root = fake_host(sock_dir / "host", host_network=False)
    with serve(sock_dir, runtime) as server:
        collector = collector_for(server, root, StatsPolicy())
        for _ in range(3):
            pods, _ = collector.collect(time.monotonic() + TIMEOUT)
        collector.close()
    assert "ListPodSandboxStats" not in runtime.calls
    assert pods[0].network_source == "procfs"
    assert {i.name for i in pods[0].network} == {"ifb0", "ifb1", "eth0"}  # lo left out
    assert all(i.HasField("receive_packets") for i in pods[0].network)


def test_unimplemented_pod_stats_is_asked_once_for_a_pod_it_cannot_read(sock_dir: Path) -> None:
    runtime = FakeRuntime(name="cri-dockerd", unimplemented={"ListPodSandboxStats"})
    runtime.add_pod("s1", "legacy")  # no sandbox pid: the agent cannot read its network
    runtime.containers = [FakeContainer("c1", "s1", "app")]
    with serve(sock_dir, runtime) as server:
        collector = collector_for(server)
        for _ in range(3):
            pods, _ = collector.collect(time.monotonic() + TIMEOUT)
        collector.close()
    assert runtime.calls.count("ListPodSandboxStats") == 1
    assert pods[0].network_source == ""
    assert collector.cri_errors_total == 0  # not implemented is not an error


def test_host_network_pod_gets_no_pod_network(sock_dir: Path) -> None:
    runtime = FakeRuntime(unimplemented={"ListPodSandboxStats"}, sandbox_pid=SANDBOX_PID)
    runtime.add_pod("s1", "host-pod")
    root = fake_host(sock_dir / "host", host_network=True)
    with serve(sock_dir, runtime) as server:
        pods, _ = collector_for(server, root).collect(time.monotonic() + TIMEOUT)
    assert pods[0].network_source == "host"
    assert len(pods[0].network) == 0


def test_failing_pod_stats_keeps_container_data(sock_dir: Path) -> None:
    runtime = containerd_like()
    runtime.failing["ListPodSandboxStats"] = grpc.StatusCode.UNKNOWN
    with serve(sock_dir, runtime) as server:
        collector = collector_for(server)
        pods, _ = collector.collect(time.monotonic() + TIMEOUT)
    assert {c.name for c in pods[0].containers} == {"app", "crashed"}
    assert collector.cri_errors_total == 1
    assert pods[0].network_source == ""


def test_missing_stats_fields_stay_absent_not_zero(sock_dir: Path) -> None:
    runtime = FakeRuntime()
    runtime.add_pod("s1", "p")
    runtime.containers = [
        FakeContainer("c1", "s1", "no-memory", working_set=None),
        FakeContainer("c2", "s1", "no-stats", with_stats=False),
    ]
    with serve(sock_dir, runtime) as server:
        pods, _ = collector_for(server).collect(time.monotonic() + TIMEOUT)
    containers = {c.name: c for c in pods[0].containers}
    assert not containers["no-memory"].memory.HasField("working_set_bytes")
    assert containers["no-memory"].cpu.HasField("usage_seconds_total")
    assert not containers["no-stats"].HasField("cpu")
    assert containers["no-stats"].state == tm.CONTAINER_STATE_RUNNING


def test_counter_going_backwards_gives_no_rate(sock_dir: Path) -> None:
    runtime = containerd_like()
    with serve(sock_dir, runtime) as server:
        collector = collector_for(server)
        collector.collect(time.monotonic() + TIMEOUT)
        runtime.containers[0].usage_ns = NANOS  # was 5 s: counter reset
        pods, _ = collector.collect(time.monotonic() + TIMEOUT)
    app = next(c for c in pods[0].containers if c.name == "app")
    assert not app.cpu.HasField("usage_cores")


def test_five_hundred_containers(sock_dir: Path) -> None:
    runtime = FakeRuntime()
    for p in range(100):
        runtime.add_pod(f"s{p}", f"pod-{p}", namespace=f"ns-{p % 7}")
    runtime.containers = [
        FakeContainer(f"c{i}", f"s{i % 100}", f"ctr-{i}", usage_ns=i * NANOS) for i in range(500)
    ]
    with serve(sock_dir, runtime) as server:
        collector = collector_for(server)
        pods = two_cycles(collector, runtime)
    assert len(pods) == 100
    assert sum(len(p.containers) for p in pods) == 500
    assert all(c.cpu.HasField("usage_cores") for p in pods for c in p.containers)
    assert len(collector.rates) == 500


def test_removed_containers_are_forgotten(sock_dir: Path) -> None:
    runtime = containerd_like()
    with serve(sock_dir, runtime) as server:
        collector = collector_for(server)
        collector.collect(time.monotonic() + TIMEOUT)
        runtime.containers = runtime.containers[:1]
        pods, _ = collector.collect(time.monotonic() + TIMEOUT)
    assert [c.name for c in pods[0].containers] == ["app"]
    assert len(collector.rates) == 1


def test_hung_runtime_costs_one_deadline_and_node_data_survives(sock_dir: Path) -> None:
    runtime = FakeRuntime(hang={"ListPodSandbox"}, hang_seconds=30)
    runtime.add_pod("s1", "p")
    root = sock_dir / "host"
    shutil.copytree(REAL, root)
    with serve(sock_dir, runtime) as server:
        errors = CollectorErrors()
        link = RuntimeLink(HostPaths(root), server.endpoint, TIMEOUT, errors)
        builder = ReportBuilder(
            agent_id="a",
            node=NodeCollector(HostPaths(root), "n", errors),
            runtime=link,
            errors=errors,
            cri_timeout=TIMEOUT,
        )
        started = time.monotonic()
        report = builder.build(sequence=1)
        elapsed = time.monotonic() - started
        link.close()
    print(f"hung runtime: cycle took {elapsed:.2f}s with a {TIMEOUT}s CRI deadline")
    # the only runtime call after Version was the hung one, and it carried our deadline
    assert runtime.calls == ["Version", "ListPodSandbox"]
    # grpc-timeout travels as a rounded-up header value, hence the small allowance
    assert runtime.remaining_at_entry["ListPodSandbox"] <= TIMEOUT + 0.05
    assert report.health.cri_errors_total == 1
    assert len(report.pods) == 0
    assert report.node.cpu_seconds_by_mode["user"] > 0
    assert len(report.node.pressure) == 3


def test_runtime_that_disappears_and_returns_is_reconnected(sock_dir: Path) -> None:
    runtime = containerd_like()
    server = serve(sock_dir, runtime)
    with server:
        collector = collector_for(server)
        pods, _ = collector.collect(time.monotonic() + TIMEOUT)
        assert pods
    pods, _ = collector.collect(time.monotonic() + TIMEOUT)
    assert pods == [] and collector.cri_errors_total == 1
    with serve(sock_dir, runtime):
        pods, _ = collector.collect(time.monotonic() + TIMEOUT)
    assert {c.name for c in pods[0].containers} == {"app", "crashed"}


def test_failed_status_look_ups_cost_only_their_fields_and_are_tried_again(
    sock_dir: Path,
) -> None:
    runtime = containerd_like()
    runtime.failing["ContainerStatus"] = grpc.StatusCode.UNKNOWN
    with serve(sock_dir, runtime) as server:
        collector = collector_for(server)
        pods, _ = collector.collect(time.monotonic() + TIMEOUT)
        containers = {c.name: c for c in pods[0].containers}
        assert set(containers) == {"app", "crashed"}  # from ListContainers alone
        assert not containers["crashed"].HasField("limits")
        assert collector.cri_errors_total == 2  # one per container looked up
        del runtime.failing["ContainerStatus"]
        pods, _ = collector.collect(time.monotonic() + TIMEOUT)
        collector.close()
    crashed = next(c for c in pods[0].containers if c.name == "crashed")
    assert (crashed.exit_code, crashed.reason) == (137, "OOMKilled")
    assert runtime.calls.count("ContainerStatus") == 4
