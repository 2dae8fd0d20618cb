"""Every node collector, in the one place that names it, says what it reads, whether it
runs by default and which settings it takes. The command line's --collector-* flags and
the collectors' run order come from this list."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from kubensage_agent.collectors.node import (
    addresses,
    conntrack,
    cpu,
    diskstats,
    filefd,
    filesystem,
    loadavg,
    meminfo,
    netdev,
    osrelease,
    pressure,
    stat,
    timex,
    uname,
    uptime,
    vmstat,
    walltime,
)
from kubensage_agent.collectors.node.base import Build, stateless


@dataclass(frozen=True)
class CollectorSpec:
    name: str
    help: str
    build: Build
    enabled_by_default: bool = True
    # a frozen dataclass whose field defaults are the settings' defaults and whose
    # validate() refuses bad values; None when the collector has no settings
    config: type[Any] | None = None


COLLECTORS: tuple[CollectorSpec, ...] = (
    CollectorSpec(
        "cpu", "/proc/stat: CPU seconds per mode, node-wide and per CPU.", stateless(cpu.collect)
    ),
    CollectorSpec(
        "stat",
        "/proc/stat: boot time, context switches, forks, interrupts, runnable and "
        "blocked processes.",
        stateless(stat.collect),
    ),
    CollectorSpec(
        "meminfo", "/proc/meminfo: every field and the memory summary.", stateless(meminfo.collect)
    ),
    CollectorSpec("loadavg", "/proc/loadavg: load averages.", stateless(loadavg.collect)),
    CollectorSpec("pressure", "/proc/pressure: PSI stall times.", stateless(pressure.collect)),
    CollectorSpec(
        "vmstat",
        "/proc/vmstat: page faults, paging, swapping, OOM kills.",
        stateless(vmstat.collect),
    ),
    CollectorSpec(
        "filefd",
        "/proc/sys/fs/file-nr: file handles in use and maximum.",
        stateless(filefd.collect),
    ),
    CollectorSpec(
        "netdev", "/proc/net/dev: every counter of every interface.", stateless(netdev.collect)
    ),
    CollectorSpec(
        "conntrack",
        "/proc/sys/net/netfilter: conntrack entries and limit.",
        stateless(conntrack.collect),
    ),
    CollectorSpec(
        "diskstats",
        "/proc/diskstats: I/O counters per block device.",
        diskstats.build,
        config=diskstats.DiskstatsConfig,
    ),
    CollectorSpec(
        "filesystem",
        "statfs of the mount points in /proc/1/mounts: size, free, inodes.",
        filesystem.build,
        config=filesystem.FilesystemConfig,
    ),
    CollectorSpec(
        "timex", "adjtimex(2), read only: clock sync, offset, errors.", stateless(timex.collect)
    ),
    CollectorSpec("time", "Wall-clock time and time zone.", stateless(walltime.collect)),
    CollectorSpec("uptime", "/proc/uptime: seconds since boot.", stateless(uptime.collect)),
    CollectorSpec(
        "uname", "uname(2): kernel, architecture, host and domain name.", stateless(uname.collect)
    ),
    CollectorSpec("os", "/etc/os-release: the distribution.", osrelease.build),
    CollectorSpec(
        "addresses", "The node's IP addresses, loopback left out.", stateless(addresses.collect)
    ),
)
BY_NAME: Mapping[str, CollectorSpec] = {spec.name: spec for spec in COLLECTORS}
DEFAULT_ENABLED = frozenset(spec.name for spec in COLLECTORS if spec.enabled_by_default)


def default_configs() -> dict[str, Any]:
    return {spec.name: spec.config() for spec in COLLECTORS if spec.config is not None}


def config_fields(spec: CollectorSpec) -> tuple[dataclasses.Field[Any], ...]:
    return dataclasses.fields(spec.config) if spec.config is not None else ()


@dataclass(frozen=True)
class NodeSettings:
    """Which collectors run and with what settings; the registry's defaults unless told."""

    enabled: frozenset[str] = DEFAULT_ENABLED
    configs: Mapping[str, Any] = field(default_factory=default_configs)

    def validate(self) -> None:
        unknown = sorted(self.enabled - BY_NAME.keys())
        if unknown:
            raise ValueError(f"unknown node collectors: {', '.join(unknown)}")
        for name, config in self.configs.items():
            if name not in BY_NAME or not isinstance(config, BY_NAME[name].config or ()):
                raise ValueError(f"settings {config!r} do not belong to collector {name!r}")
            try:
                config.validate()
            except ValueError as exc:
                raise ValueError(f"collector {name}: {exc}") from exc

    def config_for(self, spec: CollectorSpec) -> Any:
        if spec.name in self.configs:
            return self.configs[spec.name]
        return spec.config() if spec.config is not None else None

    def without(self, *names: str) -> NodeSettings:
        """These settings with the named collectors turned off (unknown names refused)."""
        unknown = sorted(set(names) - BY_NAME.keys())
        if unknown:
            raise ValueError(f"unknown node collectors: {', '.join(unknown)}")
        return dataclasses.replace(self, enabled=self.enabled - set(names))
