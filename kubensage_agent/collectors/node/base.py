"""What every node collector is given: the host's kernel files for one cycle."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any, TypeVar, cast

from kubensage_agent.collectors.errors import CollectorErrors
from kubensage_agent.hostfs import HostPaths, read_whole
from kubensage_api.telemetry import telemetry_pb2 as tm

T = TypeVar("T")
NANOS = 1_000_000_000


class NodeFiles:
    """The host's /proc for one cycle. A file two collectors parse is read and parsed
    once (cpu and stat both read /proc/stat), so splitting collectors costs no reads."""

    def __init__(self, paths: HostPaths) -> None:
        self.paths = paths
        # a string, not a Path: pathlib's joins cost more than the reads
        self._proc = str(paths.proc())
        self._parsed: dict[tuple[Callable[[str], Any], tuple[str, ...]], Any] = {}

    def proc_path(self, *parts: str) -> str:
        return "/".join((self._proc, *parts))

    def read(self, *proc_parts: str) -> str:
        return read_whole(self.proc_path(*proc_parts))

    def parsed(self, parser: Callable[[str], T], *proc_parts: str) -> T:
        key = (parser, proc_parts)
        if key not in self._parsed:
            self._parsed[key] = parser(self.read(*proc_parts))
        return cast(T, self._parsed[key])


# One collector's work in a cycle: fill its part of the report from the host.
Step = Callable[[NodeFiles, tm.Node], None]
# Makes a collector's step from its configuration (None when it has none).
Build = Callable[[Any, CollectorErrors], Step]


def stateless(step: Step) -> Build:
    """The build of a collector that keeps nothing between cycles and has no settings."""

    def build(_config: Any, _errors: CollectorErrors) -> Step:
        return step

    return build


def compile_pattern(value: str, setting: str) -> re.Pattern[str]:
    """A filter regex from the command line, refused with its setting's name when bad.
    Filters match anywhere in the value (re.search), as Go's MatchString does."""
    try:
        return re.compile(value)
    except re.error as exc:
        raise ValueError(f"{setting}: not a regular expression ({exc}): {value!r}") from exc
