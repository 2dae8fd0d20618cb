"""The node collectors' command-line flags, generated from the registry: an on/off pair
per collector (--collector-<name>/--no-collector-<name>) and one flag per setting
(--collector-<name>-<setting>), each with its KUBENSAGE_* variable and config-file key."""

from __future__ import annotations

import typing
from collections.abc import Callable
from typing import Any, TypeVar

from kubensage_agent.collectors.node.registry import (
    BY_NAME,
    COLLECTORS,
    CollectorSpec,
    NodeSettings,
    config_fields,
)
from kubensage_common.cliconfig import option

F = TypeVar("F", bound=Callable[..., Any])
DISABLE_LIST = "disable_collectors"


def _switch(spec: CollectorSpec) -> str:
    return f"collector_{spec.name}"


def _setting(spec: CollectorSpec, name: str) -> str:
    return f"collector_{spec.name}_{name}"


def _flag(param: str) -> str:
    return "--" + param.replace("_", "-")


def collector_options(func: F) -> F:
    for spec in reversed(COLLECTORS):
        hints = typing.get_type_hints(spec.config) if spec.config is not None else {}
        for setting in reversed(config_fields(spec)):
            func = option(
                _flag(_setting(spec, setting.name)),
                type=hints[setting.name],
                default=setting.default,
                help=setting.metadata["help"],
            )(func)
        switch = _flag(_switch(spec))
        func = option(
            f"{switch}/--no-{switch.removeprefix('--')}",
            default=spec.enabled_by_default,
            help=spec.help,
        )(func)
    return option(
        _flag(DISABLE_LIST),
        default="",
        help="Comma-separated node collectors to turn off, as --no-collector-<name> does "
        f"({','.join(spec.name for spec in COLLECTORS)}).",
    )(func)


def settings_from_options(options: dict[str, Any]) -> NodeSettings:
    """The collectors' settings from parsed options; ValueError names what is wrong."""
    disabled = {n.strip() for n in options[DISABLE_LIST].split(",") if n.strip()}
    unknown = sorted(disabled - BY_NAME.keys())
    if unknown:
        raise ValueError(f"unknown node collectors: {', '.join(unknown)}")
    settings = NodeSettings(
        enabled=frozenset(
            spec.name for spec in COLLECTORS if options[_switch(spec)] and spec.name not in disabled
        ),
        configs={
            spec.name: spec.config(
                **{f.name: options[_setting(spec, f.name)] for f in config_fields(spec)}
            )
            for spec in COLLECTORS
            if spec.config is not None
        },
    )
    settings.validate()
    return settings
