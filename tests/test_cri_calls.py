"""Which CRI calls a cycle makes: a fake runtime answering as containerd 1.x does (pod stats
costly, every container in a cgroup of the v1 tree captured on this project's host, each
sandbox in its own network namespace), its call log read cycle by cycle."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from kubensage_agent.collectors.stats_policy import LEGACY, CallSchedule, StatsPolicy, is_cheap
from kubensage_api.telemetry import telemetry_pb2 as tm
from tests.support.fake_cri import NANOS
from tests.test_cgroup_collector import V1_ID, MakeNode, Node, node_on
from tests.test_cgroup_parsers import V1
from tests.test_cri_collector import SANDBOX_PID, give_sandbox_netns

__all__ = ["node_on"]  # the fixture, used by name
LISTS = ["ListPodSandbox", "ListContainers"]
STATS_CALLS = {"ListContainerStats", "ListPodSandboxStats", "ImageFsInfo"}
# far longer than a test runs: a call made once is not due again within it
NEVER_AGAIN = StatsPolicy(cri_stats_interval=3600.0)


def containerd_1x(node_on: MakeNode, policy: StatsPolicy, **runtime: object) -> Node:
    node = node_on(V1, policy=policy)
    node.runtime.pod_stats_seconds_per_sandbox = 0.3  # runc ps per sandbox: expensive
    node.runtime.sandbox_pid = SANDBOX_PID
    for name, value in runtime.items():
        setattr(node.runtime, name, value)
    give_sandbox_netns(node.root, host_network=False)
    node.runtime.add_pod("s1", "web-7d9c", "shop")
    node.container(V1_ID, "s1", "app", usage_ns=2 * NANOS, info=node.info("containerd"))
    return node


def calls_per_cycle(node: Node, cycles: int) -> Iterator[tuple[list[str], tm.Container]]:
    """Each cycle's calls (status look-ups left out) and the container it reported."""
    for _ in range(cycles):
        before = len(node.runtime.calls)
        container = node.collect()[V1_ID]
        made = node.runtime.calls[before:]
        yield [c for c in made if not c.endswith("Status")], container


def test_steady_state_cycle_makes_only_the_two_list_calls(node_on: MakeNode) -> None:
    node = containerd_1x(node_on, NEVER_AGAIN)
    cycles = list(calls_per_cycle(node, 5))
    first, second, *steady = [calls for calls, _ in cycles]
    # the first cycle stays cheap: lists, statuses, image filesystems, no stats
    assert first == [*LISTS, "ImageFsInfo"]
    # the writable layer is fetched once, on the next cycle
    assert second == [*LISTS, "ListContainerStats"]
    assert steady == [LISTS] * 3
    assert "ListPodSandboxStats" not in node.runtime.calls
    # figures every cycle all the same: CPU and memory from the cgroup, network from
    # /proc/<sandbox pid>/net/dev, the writable layer and image filesystems carried
    for _, container in cycles[1:]:
        assert (container.cpu.source, container.memory.source) == ("cgroup", "cgroup")
        assert container.writable_layer.used_bytes == 4096
    pods, image_fs = node.collector.collect(time.monotonic() + 2.0)
    assert pods[0].network_source == "procfs" and len(pods[0].network) == 3
    assert image_fs[0].used_bytes == 5 * 1024**3
    assert cycles[-1][1].cpu.rate_source == "computed"


def test_the_writable_layer_keeps_its_last_known_value_between_calls(node_on: MakeNode) -> None:
    node = containerd_1x(node_on, NEVER_AGAIN)
    (_, first), (_, fetched) = calls_per_cycle(node, 2)
    assert not first.HasField("writable_layer")  # not asked yet
    node.runtime.containers[0].writable_layer_bytes = 8192  # not asked again
    ((calls, carried),) = calls_per_cycle(node, 1)
    assert calls == LISTS
    assert fetched.writable_layer.used_bytes == carried.writable_layer.used_bytes == 4096
    assert carried.writable_layer.inodes_used == 7


def test_with_interval_zero_every_stats_call_is_made_every_cycle(node_on: MakeNode) -> None:
    node = containerd_1x(node_on, LEGACY, pod_stats_seconds_per_sandbox=0.0)
    cycles = list(calls_per_cycle(node, 3))
    for calls, container in cycles:
        assert set(calls) == {*LISTS, *STATS_CALLS} and len(calls) == 5
        assert (container.cpu.source, container.memory.source) == ("cri", "cri")
    pods, _ = node.collector.collect(time.monotonic() + 2.0)
    assert pods[0].network_source == "cri"


def test_a_pod_it_cannot_read_asks_once_then_only_when_due_on_an_expensive_runtime(
    node_on: MakeNode,
) -> None:
    node = containerd_1x(node_on, NEVER_AGAIN, sandbox_pid=None)
    cycles = [calls for calls, _ in calls_per_cycle(node, 4)]
    # measured on the first answer (0.3 s for one sandbox): not asked per cycle again
    assert [c.count("ListPodSandboxStats") for c in cycles] == [1, 0, 0, 0]


def test_vm_isolated_containers_keep_cri_stats_every_cycle(node_on: MakeNode) -> None:
    node = containerd_1x(node_on, NEVER_AGAIN)
    node.runtime.add_pod("s2", "kata-db", "shop", runtime_handler="kata-qemu")
    node.container("vm1", "s2", "db", usage_ns=NANOS)
    for calls, _ in calls_per_cycle(node, 3):
        assert calls.count("ListContainerStats") == 1
    pods, _ = node.collector.collect(time.monotonic() + 2.0)
    by_name = {c.name: c for pod in pods for c in pod.containers}
    assert by_name["db"].cpu.source == "cri"
    assert by_name["app"].cpu.source == "cgroup"


@pytest.mark.parametrize(
    ("seconds", "items", "cheap"),
    [(0.004, 0, True), (0.02, 110, True), (0.3, 1, False), (1.2, 110, False)],
)
def test_an_answer_is_cheap_by_its_time_per_item(seconds: float, items: int, cheap: bool) -> None:
    assert is_cheap(seconds, items) is cheap


def test_a_cheap_call_is_made_every_cycle_an_expensive_one_once_per_interval() -> None:
    schedule = CallSchedule(interval=60.0)
    assert schedule.needed_and_affordable(True, now=0.0)  # never measured: probe it
    schedule.measured(0.0, seconds=0.001, items=10)
    assert schedule.needed_and_affordable(True, now=10.0)
    assert not schedule.needed_and_affordable(False, now=20.0)  # nothing needs it
    schedule.measured(20.0, seconds=2.0, items=10)
    assert not schedule.needed_and_affordable(True, now=30.0)
    assert schedule.needed_and_affordable(True, now=80.0)  # due: measured again


def test_a_slow_call_waits_its_interval_and_skips_the_first_cycle() -> None:
    schedule = CallSchedule(interval=60.0)
    assert not schedule.due(now=0.0)  # the first cycle stays cheap
    assert schedule.due(now=10.0)
    schedule.measured(10.0, seconds=0.3, items=110)
    assert not schedule.due(now=60.0)
    assert schedule.due(now=70.0)
    assert CallSchedule(interval=0.0).due(now=0.0)


def test_a_call_wanted_in_the_first_report_is_due_at_once_then_once_per_interval() -> None:
    schedule = CallSchedule(interval=60.0, in_first_cycle=True)
    assert schedule.due(now=0.0)
    assert schedule.due(now=0.0)  # not answered yet: asked again next cycle
    schedule.measured(0.0, seconds=0.01, items=1)
    assert not schedule.due(now=30.0)
    assert schedule.due(now=60.0)


def test_procfs_read_failure_turns_to_the_runtime_for_that_pod(node_on: MakeNode) -> None:
    node = containerd_1x(node_on, NEVER_AGAIN, pod_stats_seconds_per_sandbox=0.0)
    (node.root / "proc" / str(SANDBOX_PID) / "net" / "dev").unlink()
    sources = []
    for _ in range(2):
        pods, _ = node.collector.collect(time.monotonic() + 2.0)
        sources.append(pods[0].network_source)
    assert node.runtime.calls.count("ListPodSandboxStats") == 1
    assert sources == ["", "cri"]  # failed once, then the runtime's figures
