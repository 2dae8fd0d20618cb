"""Options shared by the agent's commands, so every command reads the host the same way."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import click

from kubensage_agent.collectors.node.flags import collector_options
from kubensage_agent.collectors.stats_policy import (
    DEFAULT_CRI_STATS_INTERVAL,
    SOURCES,
    StatsPolicy,
)
from kubensage_common.cliconfig import config_option, logging_options, option

F = TypeVar("F", bound=Callable[..., Any])


def host_options(func: F) -> F:
    func = collector_options(func)
    func = option(
        "--node-name",
        default=None,
        help="Kubernetes node name; defaults to $NODE_NAME, then the hostname.",
    )(func)
    func = option(
        "--cri-stats-interval",
        type=click.FloatRange(min=0),
        default=DEFAULT_CRI_STATS_INTERVAL,
        help="Seconds between the CRI stats calls for what only the runtime knows (writable "
        "layer, image filesystem), carried in between; 0 makes every CRI stats call every "
        "cycle, as costly as that is for the runtime.",
    )(func)
    func = option(
        "--prefer-source",
        type=click.Choice(SOURCES),
        default=SOURCES[0],
        help="Where CPU, memory, swap, PSI and pod network come from when both the "
        "container's cgroup (and /proc) and the runtime's CRI stats give them.",
    )(func)
    func = option(
        "--cri-timeout",
        type=click.FloatRange(min=0.1, max=120),
        default=5.0,
        help="Deadline in seconds for CRI calls; also the runtime's share of one cycle.",
    )(func)
    func = option(
        "--cri-socket",
        default=None,
        help="CRI endpoint (unix:///path); probed in the documented order when unset.",
    )(func)
    func = option(
        "--host-root",
        type=click.Path(file_okay=False),
        default="/",
        help="Where the host's / is mounted (e.g. /host in a DaemonSet).",
    )(func)
    func = logging_options(func)
    return config_option()(func)


def stats_policy(options: dict[str, Any]) -> StatsPolicy:
    return StatsPolicy(
        prefer=options["prefer_source"], cri_stats_interval=options["cri_stats_interval"]
    )
