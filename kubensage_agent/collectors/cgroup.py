"""Containers' cgroups: found once per container from what the runtime says, read every cycle.

The runtime's `cgroupsPath` (verbose ContainerStatus) is mapped for the cgroupfs and
systemd drivers to a directory under each host cgroup mount, found once from the host's
/proc/1/mountinfo. The container's open files live until it stops running or goes.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

from kubensage_agent.cgroups.devices import DeviceNames
from kubensage_agent.cgroups.files import FdBudget
from kubensage_agent.cgroups.hierarchy import CgroupLayout
from kubensage_agent.cgroups.oomkills import OomKillLedger
from kubensage_agent.cgroups.paths import cgroup_relative_path
from kubensage_agent.cgroups.reader import CgroupGoneError, CgroupSample, ContainerCgroup
from kubensage_agent.collectors.errors import CollectorErrors
from kubensage_agent.hostfs import HostPaths, read_small
from kubensage_agent.parsers.cgroup import parse_cgroup_mounts
from kubensage_api.telemetry import telemetry_pb2 as tm

COLLECTOR = "container_cgroup"


class CgroupCollector:
    def __init__(
        self, paths: HostPaths, errors: CollectorErrors, budget: FdBudget | None = None
    ) -> None:
        self.paths = paths
        self.errors = errors
        self.budget = budget if budget is not None else FdBudget.from_rlimit()
        self.devices = DeviceNames(paths)
        self.oom_kills = OomKillLedger()
        self._layout: CgroupLayout | None = None
        self._layout_read = False
        # container id -> its open cgroup, or None when it has none on this host
        self._open: dict[str, ContainerCgroup | None] = {}
        self._sampled: set[str] = set()
        self._failing: set[str] = set()
        self._failed_before: set[str] = set()

    def relative_path(self, cgroups_path: str) -> str:
        """The container's cgroup as the kubelet's cAdvisor names it; "" when the runtime
        gave none or one this agent cannot map."""
        if not cgroups_path:
            return ""
        try:
            relative = cgroup_relative_path(cgroups_path)
        except ValueError as exc:
            # looked up once per container: logged once for the agent's lifetime
            self.errors.totals[COLLECTOR] += 1
            self.errors.once.problem("cgroup:cgroupsPath", f"container cgroup unknown: {exc}")
            return ""
        return relative

    def layout(self) -> CgroupLayout | None:
        """The host's cgroup mounts, read once for the agent's lifetime."""
        if not self._layout_read:
            self._layout_read = True
            try:
                mounts = parse_cgroup_mounts(read_small(self.paths.proc("1", "mountinfo")))
            except (OSError, ValueError, UnicodeDecodeError) as exc:
                self.errors.totals[COLLECTOR] += 1
                self.errors.once.problem(
                    "cgroup:mountinfo", f"no container cgroup figures: host mountinfo: {exc}"
                )
                return None
            self._layout = CgroupLayout.from_mounts(mounts, self.paths)
        return self._layout

    def readable(self, container_id: str, relative: str) -> bool:
        """Whether a running container has a cgroup at `relative` on this host; its files
        are opened on the first call only, and stay open while it is sampled each cycle."""
        self._sampled.add(container_id)
        if container_id not in self._open:
            layout = self.layout()
            dirs = layout.container_dirs(relative) if layout is not None and relative else None
            self._open[container_id] = (
                ContainerCgroup.open(dirs, self.budget) if dirs is not None else None
            )
        return self._open[container_id] is not None

    def sample(self, container_id: str, relative: str, usage: bool) -> CgroupSample | None:
        """This cycle's figures of a running container's cgroup at `relative` (with CPU and
        memory usage when `usage`); None when it has no cgroup on this host."""
        cgroup = self._open.get(container_id) if self.readable(container_id, relative) else None
        if cgroup is None:
            return None
        try:
            return cgroup.read(self._failed, usage)
        except CgroupGoneError:
            cgroup.close()  # exited since the runtime listed it; not read again
            self._open[container_id] = None
            return None

    def observe_oom_kills(
        self,
        sandbox_id: str,
        container: tm.Container,
        sample: CgroupSample | None,
    ) -> None:
        self.oom_kills.observe(
            (sandbox_id, container.name),
            container.attempt,
            running=container.state == tm.CONTAINER_STATE_RUNNING,
            reading=sample.oom_kills if sample is not None else None,
            reason=container.reason,
        )

    def end_cycle(self, pods: Sequence[tm.Pod]) -> None:
        """Put each container's OOM kill count in the report, close the cgroups of
        containers no longer running, and clear the problems that went away."""
        listed = []
        for pod in pods:
            for container in pod.containers:
                key = (pod.sandbox_id, container.name)
                listed.append((key, container.attempt))
                count = self.oom_kills.count(key, container.attempt)
                if count is not None:
                    container.memory.oom_kills = count
        self.oom_kills.retain(listed, (pod.sandbox_id for pod in pods))
        for container_id in [c for c in self._open if c not in self._sampled]:
            cgroup = self._open.pop(container_id)
            if cgroup is not None:
                cgroup.close()
        self._sampled = set()
        for cause in self._failed_before - self._failing:
            self.errors.once.clear(cause)
        self._failed_before, self._failing = self._failing, set()

    def close(self) -> None:
        for cgroup in self._open.values():
            if cgroup is not None:
                cgroup.close()
        self._open.clear()

    def _failed(self, what: str, exc: Exception) -> None:
        cause = f"cgroup:{os.path.basename(what)}"
        self.errors.totals[COLLECTOR] += 1
        self._failing.add(cause)
        self.errors.once.problem(cause, f"container cgroup file {what}: {exc}")
