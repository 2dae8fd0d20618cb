"""The cadvisor profile in place of the kubelet's cAdvisor, read as the kubernetes-mixin
reads it.

Real containerd with pods made as the kubelet makes them (QoS cgroup parents, CPU and
memory limits, one pod in its own network namespace), a real agent pushing every second to
a real relay serving `native,cadvisor`, and a real Prometheus scraping the relay as job
"cadvisor" (the mixin's cadvisorSelector) and a kube-state-metrics stand-in for
`kube_pod_info`, with the mixin's recording rules and CPUThrottlingHigh alert loaded from a
rule file. Every figure is read through the Prometheus HTTP API, as a user reads it, and
checked against what the kernel says: the container's own cgroup files or its network
namespace's counters, read by the test. One setup serves the whole module.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import pytest
import yaml

from kubensage_agent.parsers.cgroup import parse_cgroup_mounts
from kubensage_agent.parsers.cgroup_io import parse_blkio_rwstat, parse_io_stat
from kubensage_agent.parsers.cgroup_memory import MemoryStat, parse_memory_stat
from kubensage_agent.parsers.cgroup_value import parse_flat_keyed
from kubensage_agent.parsers.netdev import parse_net_dev
from kubensage_api.cri import api_pb2
from kubensage_lab.containerd import CNI_PLUGINS, Containerd
from kubensage_lab.cri_driver import CriDriver, PodHandle, Resources
from kubensage_lab.processes import (
    Prometheus,
    RelayProcess,
    Service,
    eventually,
    http_get,
    python_module,
)
from tests.conftest import require
from tests.integration.test_cgroup_figures import ALLOCATE_PAST_LIMIT, MIB, whole_disk
from tests.support import kubernetes_mixin as mixin
from tests.support.kube_state_metrics import KubeStateMetrics, PodInfo

pytestmark = pytest.mark.slow

NODE = "cadvisor-node"
# what the tests' rates and increases look back over (the mixin's 5m, $__rate_interval)
WINDOW_SECONDS = 20
WINDOW = f"{WINDOW_SECONDS}s"
# The reader starts a cat and a sleep every second, so its cgroup's usage moves by about a
# process's memory between the last scrape and a read of the cgroup now.
PROCESS_MEMORY_BYTES = 2 * 1024 * 1024


@dataclass(frozen=True)
class Workload:
    """One container in its pod, created as the kubelet creates it."""

    namespace: str
    pod: str
    container: str
    script: str
    qos: str = "besteffort"
    resources: Resources | None = None
    host_network: bool = True

    @property
    def matchers(self) -> str:
        return f'namespace="{self.namespace}",pod="{self.pod}",container="{self.container}"'


SPIN = Workload(
    "limits",
    "throttled",
    "spin",
    "yes > /dev/null & yes > /dev/null & yes > /dev/null",
    "burstable",
    Resources(cpu_request=0.25, cpu_limit=0.5, memory_limit=64 * MIB),
)
IDLE = Workload(
    "limits",
    "idle",
    "sleep",
    "sleep 100000",
    "guaranteed",
    Resources(cpu_request=0.1, cpu_limit=0.1, memory_limit=32 * MIB),
)
WRITER = Workload(
    "io",
    "writer",
    "sync",
    "while true; do dd if=/dev/zero of=/written bs=1M count=4 conv=fsync; sleep 1; done",
)
READER = Workload(
    "io",
    "reader",
    "cat",
    # read again every second: this machine's host may reclaim page cache at any time
    "dd if=/dev/zero of=/cached bs=1M count=16"
    " && while true; do cat /cached > /dev/null; sleep 1; done",
)
LEAKY = Workload(
    "oom",
    "leaky",
    "worker",
    f"while true; do {ALLOCATE_PAST_LIMIT}; sleep 1; done",
    "burstable",
    Resources(cpu_request=0.1, memory_limit=64 * MIB),
)
CRASHY = Workload(
    "oom",
    "crashy",
    "main",
    f"sleep 8; exec {ALLOCATE_PAST_LIMIT}",
    "burstable",
    Resources(cpu_request=0.1, memory_limit=64 * MIB),
)
TALKER = Workload("net", "talker", "ping", "exec busybox ping -i 0.2 {gateway}", host_network=False)
WORKLOADS = (SPIN, IDLE, WRITER, READER, LEAKY, CRASHY, TALKER)


@dataclass
class Scene:
    prometheus: Prometheus
    driver: CriDriver
    pods: dict[str, PodHandle]
    rule_file: Path
    started: float

    def container_id(self, workload: Workload) -> str:
        return self.pods[workload.pod].containers[workload.container]

    def series(self, promql: str, at: float | None = None) -> list[tuple[dict[str, str], float]]:
        return [(r["metric"], float(r["value"][1])) for r in self.prometheus.query(promql, at)]

    def recorded(self, rule: dict[str, Any], workload: Workload) -> tuple[dict[str, str], float]:
        """The newest sample a loaded recording rule wrote for `workload`, once it equals
        the rule's expression evaluated by the test at that sample's time (the same data
        at the same instant; a scrape still being stored while the rule ran can make one
        sample differ, so a later one is taken then)."""

        def consistent() -> tuple[dict[str, str], float] | None:
            answer = self.prometheus.query(f"{rule['record']}{{{workload.matchers}}}")
            if len(answer) != 1:
                return None
            sample = answer[0]
            at, value = float(sample["value"][0]), float(sample["value"][1])
            direct = [
                evaluated
                for labels, evaluated in self.series(rule["expr"], at)
                if (labels["namespace"], labels["pod"], labels["container"])
                == (workload.namespace, workload.pod, workload.container)
            ]
            return (sample["metric"], value) if direct == [value] else None

        found: tuple[dict[str, str], float] = eventually(consistent)
        return found

    def only(self, promql: str) -> tuple[dict[str, str], float]:
        found = self.series(promql)
        assert len(found) == 1, f"{promql}: {found}"
        return found[0]

    def history(self, promql: str) -> list[tuple[dict[str, str], list[float]]]:
        """Every series of `promql` since the pods were created, one sample a second, up
        to the newest sample (the last step lies past it)."""
        answer = self.prometheus.query_range(promql, self.started, time.time() + 1, 1)
        return [(r["metric"], [float(v) for _, v in r["values"]]) for r in answer]

    def wait_for_window(self, promql: str) -> None:
        """Until `promql` has data a whole window back, so rates over it are whole."""
        eventually(
            lambda: self.prometheus.query(f"{promql} offset {WINDOW}"),
            timeout=WINDOW_SECONDS + 90,
        )

    def bracketed(self, promql: str, read: Callable[[], float]) -> tuple[float, float, float]:
        """A counter as Prometheus shows it between two readings of its source taken
        before and after: (before, shown, after). The shown value must come from a reading
        made after `before`; the series must equal its source to land in between."""
        before = read()
        shown = eventually(lambda: (v := self.only(promql)[1]) >= before and v, timeout=30)
        return before, float(shown), read()


class ContainerCgroup:
    """A container's cgroup files, read by the test itself (v1 or v2): what the kernel
    says the figures are. `path` is the cgroup as the kubelet's cAdvisor names it, the
    series' `id`."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.mounts = parse_cgroup_mounts(Path("/proc/self/mountinfo").read_text())

    @property
    def v1(self) -> bool:
        return any(m.version == 1 for m in self.mounts)

    def read(self, v1_controller: str, v1_file: str, v2_file: str) -> str:
        for mount in self.mounts:
            if self.v1 and mount.version == 1 and v1_controller in mount.options:
                return Path(mount.mountpoint + self.path, v1_file).read_text()
            if not self.v1 and mount.version == 2:
                return Path(mount.mountpoint + self.path, v2_file).read_text()
        raise AssertionError(f"no cgroup mount for {v1_controller}")

    def cpu_seconds(self) -> float:
        if self.v1:
            return int(self.read("cpuacct", "cpuacct.usage", "")) / 1e9
        return int(parse_flat_keyed(self.read("", "", "cpu.stat"))["usage_usec"]) / 1e6

    def memory_stat(self) -> MemoryStat:
        return parse_memory_stat(self.read("memory", "memory.stat", "memory.stat"))

    def memory_usage(self) -> int:
        return int(self.read("memory", "memory.usage_in_bytes", "memory.current"))

    def written_bytes(self, device: str) -> int:
        if self.v1:
            return parse_blkio_rwstat(self.read("blkio", "blkio.throttle.io_service_bytes", ""))[
                device
            ][1]
        return parse_io_stat(self.read("", "", "io.stat"))[device].written_bytes or 0

    def first_pid(self) -> int:
        return int(self.read("memory", "cgroup.procs", "cgroup.procs").split()[0])


@pytest.fixture(scope="module")
def scene(containerd: Containerd, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Scene]:
    for program in ("prometheus", "promtool"):
        require(shutil.which(program) is not None, f"{program} (Debian package prometheus)")
    require(
        (CNI_PLUGINS / "ptp").exists(),
        f"CNI plugins in {CNI_PLUGINS} (Debian package containernetworking-plugins)",
    )
    workdir = tmp_path_factory.mktemp("cadvisor-profile")
    containerd.favour_cpu()
    gateway = containerd.enable_pod_network()
    rule_file = workdir / "kubernetes-mixin-rules.yml"
    rule_file.write_text(yaml.safe_dump({"groups": mixin.rule_groups(WINDOW)}, sort_keys=False))
    kube_state = KubeStateMetrics()
    driver = CriDriver(containerd.endpoint, containerd.cgroup_root)
    relay = RelayProcess(workdir, "relay", "--metric-profile", "native,cadvisor")
    agent = Service(
        "agent",
        python_module(
            "kubensage_agent",
            "run",
            "--relay-address",
            relay.address,
            "--cri-socket",
            containerd.endpoint,
            "--interval",
            "1",
            "--node-name",
            NODE,
        ),
        workdir,
    )
    prometheus = Prometheus(
        workdir,
        [f"127.0.0.1:{relay.http}"],
        job="cadvisor",
        honor_labels=True,
        other_jobs={"kube-state-metrics": [kube_state.address]},
        rule_files=[rule_file],
    )
    pods: dict[str, PodHandle] = {}
    try:
        relay.start()
        agent.start()
        prometheus.start().wait_http(f"{prometheus.url}/-/ready")
        started = time.time()
        for workload in WORKLOADS:
            if workload.pod not in pods:
                pods[workload.pod] = driver.run_pod(
                    workload.pod,
                    namespace=workload.namespace,
                    qos=workload.qos,
                    host_network=workload.host_network,
                )
                meta = pods[workload.pod].config.metadata
                kube_state.pods.append(
                    PodInfo(meta.namespace, meta.name, meta.uid, NODE, workload.host_network)
                )
            driver.run_container(
                pods[workload.pod],
                workload.container,
                workload.script.format(gateway=gateway),
                resources=workload.resources,
            )
        yield Scene(prometheus, driver, pods, rule_file, started)
    finally:
        for pod in pods.values():
            with contextlib.suppress(grpc.RpcError):
                driver.remove_pod(pod)
        agent.stop()
        prometheus.stop()
        relay.stop()
        kube_state.stop()
        driver.close()


@pytest.fixture(scope="module")
def disk(containerd: Containerd) -> tuple[str, str]:
    """("MAJ:MIN", kernel name) of the disk under the containers' writable layers, with
    per-cgroup block I/O counted on it (cgroup v1 counts only where blk-throttle has a rule)."""
    number, name = whole_disk(containerd.workdir)
    containerd.count_block_io(number)
    return number, name


def test_a_busy_loop_limited_to_half_a_cpu_is_throttled(scene: Scene) -> None:
    selector = f"{{{SPIN.matchers}}}"
    scene.wait_for_window(f"container_cpu_cfs_periods_total{selector}")
    for prefix in ("container", "kubensage_container"):
        periods = f"{prefix}_cpu_cfs_periods_total{selector}"
        throttled = f"{prefix}_cpu_cfs_throttled_periods_total{selector}"
        _, grown = scene.only(f"increase({throttled}[{WINDOW}])")
        _, ratio = scene.only(f"increase({throttled}[{WINDOW}]) / increase({periods}[{WINDOW}])")
        print(f"{prefix}: {grown:.0f} periods throttled in {WINDOW}, ratio {ratio:.2f}")
        assert grown > 0
        assert ratio > 0.25
    labels, _ = scene.only(f'container_cpu_usage_seconds_total{{job="cadvisor",{SPIN.matchers}}}')
    container_id = scene.container_id(SPIN)
    parent = scene.pods[SPIN.pod].config.linux.cgroup_parent
    # the kubelet's cAdvisor labels: id is the cgroup, name the runtime's container id
    assert labels["id"] == f"{parent}/{container_id}"
    assert "/kubepods/burstable/pod" in labels["id"]
    assert labels["name"] == container_id
    assert (labels["cpu"], labels["node"], labels["job"]) == ("total", NODE, "cadvisor")
    assert labels["image"]
    assert scene.only(f"container_spec_cpu_quota{selector}")[1] == 50_000
    assert scene.only(f"container_spec_cpu_period{selector}")[1] == 100_000
    cgroup = ContainerCgroup(labels["id"])
    before, shown, after = scene.bracketed(
        f"container_cpu_usage_seconds_total{selector}", cgroup.cpu_seconds
    )
    print(f"cgroup CPU {before:.3f}s <= series {shown:.3f}s <= {after:.3f}s")
    assert before <= shown <= after


def test_fsync_writes_show_on_the_named_device(scene: Scene, disk: tuple[str, str]) -> None:
    number, name = disk
    written = f'container_fs_writes_bytes_total{{{WRITER.matchers},device="/dev/{name}"}}'
    labels, _ = eventually(
        lambda: (found := scene.series(f"{written} >= {8 * MIB}")) and found[0], timeout=90
    )
    # the same figure in both profiles: the kernel's name in native, /dev/<name> in cadvisor
    native = f'kubensage_container_block_written_bytes_total{{{WRITER.matchers},device="{name}"}}'
    _, difference = scene.only(f"{written} - on (namespace, pod, container) {native}")
    assert difference == 0
    assert scene.only(f'container_fs_writes_total{{{WRITER.matchers},device="/dev/{name}"}}')[1]
    cgroup = ContainerCgroup(labels["id"])
    before, shown, after = scene.bracketed(written, lambda: cgroup.written_bytes(number))
    print(f"/dev/{name} ({number}): cgroup {before} <= series {shown:.0f} <= {after} bytes")
    assert before <= shown <= after


def test_a_file_read_back_shows_as_page_cache(scene: Scene) -> None:
    cache = f"container_memory_cache{{{READER.matchers}}}"
    labels, cached = eventually(
        lambda: (found := scene.series(f"{cache} >= {8 * MIB}")) and found[0], timeout=60
    )
    _, difference = scene.only(
        f"{cache} - on (namespace, pod, container) "
        f"kubensage_container_memory_cache_bytes{{{READER.matchers}}}"
    )
    assert difference == 0
    stat = ContainerCgroup(labels["id"]).memory_stat()
    print(f"page cache {cached / MIB:.1f} MiB, cgroup says {(stat.cache or 0) / MIB:.1f} MiB")
    assert cached == pytest.approx(stat.cache, rel=0.05, abs=MIB)


def test_oom_kills_of_a_child_rise_in_both_profiles(scene: Scene) -> None:
    native = f"kubensage_container_oom_kills_total{{{LEAKY.matchers}}}"
    eventually(lambda: scene.series(f"{native} >= 2"), timeout=90)
    [(_, kills)] = scene.history(native)
    [(labels, events)] = scene.history(f"container_oom_events_total{{{LEAKY.matchers}}}")
    print(f"OOM kills over time: {sorted(set(kills))}")
    assert kills == sorted(kills)
    assert kills[0] < kills[-1]
    assert events == kills  # the same scrapes, the same figure
    assert labels["name"] == scene.container_id(LEAKY)


def test_an_oom_killed_container_keeps_its_count_across_the_restart(scene: Scene) -> None:
    first = scene.container_id(CRASHY)
    ended = eventually(
        lambda: (s := scene.driver.container_status(first)).state == api_pb2.CONTAINER_EXITED and s,
        timeout=90,
    )
    assert ended.reason == "OOMKilled"
    # the kubelet restarts it: attempt 1 of the same container in the same pod
    second = scene.driver.run_container(
        scene.pods[CRASHY.pod],
        CRASHY.container,
        "sleep 100000",
        resources=CRASHY.resources,
        attempt=1,
    )
    events = f"container_oom_events_total{{{CRASHY.matchers}}}"
    eventually(
        lambda: scene.series(f'container_oom_events_total{{{CRASHY.matchers},name="{second}"}}')
    )
    [(_, kills)] = scene.history(f"kubensage_container_oom_kills_total{{{CRASHY.matchers}}}")
    print(f"native OOM kills over time: {sorted(set(kills))}")
    assert kills[0] == 0  # seen running before the kill
    assert kills[-1] >= 1
    assert kills == sorted(kills)  # one series across the restart, never backwards
    # cadvisor: one series per cgroup, as cAdvisor has them; the new one keeps the count
    attempts = {labels["name"]: values for labels, values in scene.history(events)}
    assert set(attempts) == {first, second}
    assert attempts[first][0] == 0
    assert set(attempts[second]) == {kills[-1]}
    assert attempts[first] + attempts[second] == sorted(attempts[first] + attempts[second])


def test_the_mixin_rules_pass_promtool_and_evaluate_without_errors(scene: Scene) -> None:
    checked = subprocess.run(
        ["promtool", "check", "rules", str(scene.rule_file)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    print(checked.stdout)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "SUCCESS: 7 rules found" in checked.stdout

    def evaluated() -> list[dict[str, Any]] | None:
        status, body = http_get(f"{scene.prometheus.url}/api/v1/rules")
        assert status == 200, body
        rules = [r for g in json.loads(body)["data"]["groups"] for r in g["rules"]]
        return rules if all(r["health"] != "unknown" for r in rules) else None

    rules = eventually(evaluated)
    assert len(rules) == 7
    # a join that matched many-to-many or a family without its labels would show here
    assert [(r["name"], r.get("lastError", "")) for r in rules if r["health"] != "ok"] == []


def test_the_cpu_usage_rule_shows_each_container_on_its_node(scene: Scene) -> None:
    scene.wait_for_window(f"container_cpu_usage_seconds_total{{{SPIN.matchers}}}")
    [cpu_group, *_] = mixin.rule_groups(WINDOW)

    def by_container() -> dict[tuple[str, str, str], tuple[dict[str, str], float]] | None:
        found = {
            (labels["namespace"], labels["pod"], labels["container"]): (labels, cores)
            for labels, cores in scene.series(cpu_group["rules"][0]["expr"])
        }
        # every container, a restarted one too once it has two samples
        return (
            found if {(w.namespace, w.pod, w.container) for w in WORKLOADS} <= set(found) else None
        )

    rates = eventually(by_container)
    labels, cores = rates[(SPIN.namespace, SPIN.pod, SPIN.container)]
    print(f"busy loop limited to 0.5 CPU: {cores:.3f} cores")
    assert labels == {"namespace": "limits", "pod": "throttled", "container": "spin", "node": NODE}
    assert 0.4 <= cores <= 0.55
    assert rates[(IDLE.namespace, IDLE.pod, IDLE.container)][1] < 0.05
    # the rules loaded into Prometheus record the same: the rate, and the irate (from the
    # last two samples) averaging to it
    labels, recorded = scene.recorded(cpu_group["rules"][0], SPIN)
    assert labels["node"] == NODE
    assert 0.4 <= recorded <= 0.55
    irate = f"{mixin.CPU_IRATE_RULE}{{{SPIN.matchers}}}"
    scene.wait_for_window(irate)
    labels, mean = scene.only(f"avg_over_time({irate}[{WINDOW}])")
    print(f"irate rule over {WINDOW}: {mean:.3f} cores on average")
    assert labels["node"] == NODE
    assert mean == pytest.approx(cores, abs=0.1)


def test_the_memory_rules_equal_the_containers_cgroup(scene: Scene) -> None:
    cache = f"container_memory_cache{{{READER.matchers}}}"
    eventually(lambda: scene.series(f"{cache} >= {8 * MIB}"), timeout=60)
    cgroup = ContainerCgroup(scene.only(cache)[0]["id"])
    groups = {g["name"]: g["rules"][0] for g in mixin.rule_groups(WINDOW)}
    stat = cgroup.memory_stat()
    truth: dict[str, float | None] = {
        "container_memory_working_set_bytes": cgroup.memory_usage() - (stat.inactive_file or 0),
        "container_memory_rss": stat.rss,
        "container_memory_cache": stat.cache,
        "container_memory_swap": stat.swap,
    }
    for family in mixin.MEMORY_FAMILIES:
        rule = groups[f"k8s.rules.{family}"]

        def of_reader(expr: str = rule["expr"]) -> list[tuple[dict[str, str], float]]:
            return [
                (labels, value)
                for labels, value in scene.series(expr)
                if (labels["namespace"], labels["pod"]) == (READER.namespace, READER.pod)
            ]

        # a rule's join has data once every side was scraped: wait for it, then expect one
        found = of_reader() if truth[family] is None else eventually(of_reader, timeout=30)
        print(f"{family}: {[v for _, v in found]}, cgroup {truth[family]}")
        if truth[family] is None:  # no swap accounting: no swap figure, no series
            assert found == []
            continue
        [(labels, value)] = found
        assert (labels["container"], labels["node"], labels["id"]) == (
            READER.container,
            NODE,
            cgroup.path,
        )
        assert value == pytest.approx(truth[family], rel=0.05, abs=PROCESS_MEMORY_BYTES)
        recorded_labels, _ = scene.recorded(rule, READER)
        assert recorded_labels["node"] == NODE
    # the Pod dashboard's memory table reads the same families per container
    for family in mixin.MEMORY_FAMILIES[1:]:
        panel = mixin.dashboard(mixin.pod_memory(family), WINDOW, READER.namespace, READER.pod)
        assert [labels["container"] for labels, _ in scene.series(panel)] == [READER.container]
    panel = mixin.dashboard(mixin.POD_MEMORY_WORKING_SET, WINDOW, READER.namespace, READER.pod)
    assert [labels["container"] for labels, _ in scene.series(panel)] == [READER.container]


def test_cpu_throttling_high_fires_for_the_limited_container_only(scene: Scene) -> None:
    scene.wait_for_window(f"container_cpu_cfs_periods_total{{{SPIN.matchers}}}")
    found = scene.series(mixin.cpu_throttling_high())
    assert [(labels["pod"], labels["container"]) for labels, _ in found] == [("throttled", "spin")]
    labels, ratio = found[0]
    print(f"CPUThrottlingHigh expression: {ratio:.2f} for {labels}")
    assert set(labels) == {"namespace", "pod", "container", "instance"}
    assert ratio > 0.25
    # the alert from the rule file: pending (its `for` is 15 minutes), for spin alone
    alerts = eventually(lambda: scene.series('ALERTS{alertname="CPUThrottlingHigh"}'))
    assert [(a["container"], a["alertstate"]) for a, _ in alerts] == [("spin", "pending")]
    # the Pod dashboard's CPU throttling panel
    panel = mixin.dashboard(mixin.POD_CPU_THROTTLING, WINDOW, SPIN.namespace, SPIN.pod)
    [(labels, share)] = scene.series(panel)
    assert labels == {"container": "spin"}
    assert share > 0.25


def test_storage_io_panels_show_the_writer(scene: Scene, disk: tuple[str, str]) -> None:
    _, name = disk
    written = f'container_fs_writes_bytes_total{{{WRITER.matchers},device="/dev/{name}"}}'
    scene.wait_for_window(written)
    for family in ("container_fs_writes_bytes_total", "container_fs_writes_total"):
        pod = mixin.dashboard(mixin.pod_storage(family), WINDOW, WRITER.namespace, WRITER.pod)
        [(labels, rate)] = scene.series(pod)
        assert labels == {"container": WRITER.container}
        assert rate > 0
        namespace = mixin.dashboard(mixin.namespace_storage(family), WINDOW, WRITER.namespace)
        by_pod = {labels["pod"]: rate for labels, rate in scene.series(namespace)}
        print(f"{family}: per pod {by_pod}")
        assert by_pod[WRITER.pod] > 0
    for family in ("container_fs_reads_bytes_total", "container_fs_reads_total"):
        pod = mixin.dashboard(mixin.pod_storage(family), WINDOW, WRITER.namespace, WRITER.pod)
        assert [labels["container"] for labels, _ in scene.series(pod)] == [WRITER.container]


def test_pod_network_shows_on_the_sandbox(scene: Scene) -> None:
    pod = f'namespace="{TALKER.namespace}",pod="{TALKER.pod}"'
    received = f"container_network_receive_bytes_total{{{pod}}}"
    scene.wait_for_window(received)
    labels, _ = scene.only(received)
    # cAdvisor's pod network series: on the sandbox, with no container name (Prometheus
    # drops empty labels)
    assert (labels["interface"], labels["node"]) == ("eth0", NODE)
    assert "container" not in labels
    sandbox = scene.pods[TALKER.pod]
    assert labels["name"] == sandbox.sandbox_id
    assert labels["id"] == f"{sandbox.config.linux.cgroup_parent}/{sandbox.sandbox_id}"
    pid = ContainerCgroup(labels["id"]).first_pid()  # the sandbox's pause process

    def eth0_received() -> float:
        counters = parse_net_dev(Path(f"/proc/{pid}/net/dev").read_text())
        return float(next(c.receive_bytes for c in counters if c.name == "eth0"))

    before, shown, after = scene.bracketed(received, eth0_received)
    print(f"eth0 received: kernel {before:.0f} <= series {shown:.0f} <= {after:.0f} bytes")
    assert before <= shown <= after
    for direction in ("receive", "transmit"):
        panel = mixin.dashboard(
            mixin.pod_bandwidth(direction), WINDOW, TALKER.namespace, TALKER.pod
        )
        [(labels, bits)] = scene.series(panel)
        print(f"{direction}: {bits:.0f} bit/s")
        assert labels == {"pod": TALKER.pod}
        assert bits > 0
        # "Networking / Namespace (Pods)": joined to kube_pod_info{host_network="false"}
        by_pod = mixin.dashboard(
            mixin.namespace_bandwidth_by_pod(direction), WINDOW, TALKER.namespace
        )
        [(labels, bits)] = scene.series(by_pod)
        assert labels == {"pod": TALKER.pod}
        assert bits > 0
