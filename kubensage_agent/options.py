"""Options shared by the agent's commands, so every command reads the host the same way."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import click

from kubensage_agent.collectors.node.flags import collector_options
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
