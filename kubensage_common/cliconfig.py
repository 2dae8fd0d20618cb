"""Configuration precedence for both CLIs: flag > KUBENSAGE_<FLAG> env > YAML file > default.

click already resolves command line, then `envvar`, then `default_map`, then the
default; the YAML file is loaded into `default_map` by an eager `--config` option.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

F = TypeVar("F", bound=Callable[..., Any])
ENV_PREFIX = "KUBENSAGE_"


def env_name(flag: str) -> str:
    """KUBENSAGE_<FLAG>; an on/off pair ("--spool/--no-spool") is named after its first half."""
    first = flag.split("/", 1)[0]
    return ENV_PREFIX + first.lstrip("-").replace("-", "_").upper()


def option(flag: str, *extra: str, **kwargs: Any) -> Callable[[F], F]:
    """A click option whose environment variable is KUBENSAGE_<FLAG>."""
    kwargs.setdefault("show_default", True)
    return click.option(flag, *extra, envvar=env_name(flag), show_envvar=True, **kwargs)


def load_config_file(path: Path) -> dict[str, Any]:
    import yaml  # noqa: PLC0415 - only with --config; the agent's memory is otherwise spared it

    try:
        data = yaml.safe_load(path.read_text()) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise click.BadParameter(f"cannot read config file {path}: {exc}") from exc
    if not isinstance(data, dict):
        raise click.BadParameter(f"config file {path} must hold a mapping of option: value")
    return {str(key).replace("-", "_"): value for key, value in data.items()}


def _apply_config_file(ctx: click.Context, _param: click.Parameter, value: str | None) -> None:
    if not value:
        return
    settings = load_config_file(Path(value))
    known = {p.name for p in ctx.command.params if p.name}
    unknown = sorted(set(settings) - known)
    if unknown:
        raise click.BadParameter(f"unknown keys in {value}: {', '.join(unknown)}")
    ctx.default_map = {**(ctx.default_map or {}), **settings}


def config_option() -> Callable[[F], F]:
    return option(
        "--config",
        type=click.Path(dir_okay=False),
        default=None,
        is_eager=True,
        expose_value=False,
        callback=_apply_config_file,
        help="YAML file with the same keys as the flags (e.g. relay-address: host:9000).",
    )


def logging_options(func: F) -> F:
    func = option(
        "--log-file",
        default=None,
        help="Also append logs to this file (rotated at 50 MB, 5 kept).",
    )(func)
    func = option(
        "--log-format",
        type=click.Choice(["text", "json"]),
        default="text",
        help="text for humans, json for log pipelines.",
    )(func)
    func = option(
        "--log-level",
        type=click.Choice(["debug", "info", "warning", "error"], case_sensitive=False),
        default="info",
    )(func)
    return func
