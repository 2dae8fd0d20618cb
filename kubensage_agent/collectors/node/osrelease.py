"""/etc/os-release (or /usr/lib/os-release): the distribution. Parsed again only when the
file changes, since shell-quoted parsing costs more than the rest of a cycle's files."""

from __future__ import annotations

from pathlib import Path

from kubensage_agent.collectors.errors import CollectorErrors
from kubensage_agent.collectors.node.base import NodeFiles, Step
from kubensage_agent.parsers.osrelease import parse_os_release
from kubensage_api.telemetry import telemetry_pb2 as tm

CANDIDATES = ("/etc/os-release", "/usr/lib/os-release")
# what node_exporter's os collector reports, in its node_os_info labels
REPORTED_KEYS = (
    "NAME",
    "ID",
    "ID_LIKE",
    "PRETTY_NAME",
    "VARIANT",
    "VARIANT_ID",
    "VERSION",
    "VERSION_ID",
    "VERSION_CODENAME",
    "BUILD_ID",
    "IMAGE_ID",
    "IMAGE_VERSION",
)


class OsReleaseCollector:
    def __init__(self) -> None:
        self._source: tuple[Path, int, int] | None = None
        self._release: dict[str, str] = {}

    def _current(self, files: NodeFiles) -> dict[str, str]:
        for candidate in CANDIDATES:
            path = files.paths.path(candidate)
            try:
                stat = path.stat()
            except FileNotFoundError:
                continue
            source = (path, stat.st_mtime_ns, stat.st_size)
            if source != self._source:
                self._release = parse_os_release(path.read_text())
                self._source = source
            return self._release
        raise FileNotFoundError(f"no os-release file under {files.paths.root}")

    def __call__(self, files: NodeFiles, node: tm.Node) -> None:
        release = self._current(files)
        node.os_name = release.get("NAME", "")
        node.os_version = release.get("VERSION_ID", "")
        node.os_image = release.get("PRETTY_NAME", node.os_name)
        node.os_id = release.get("ID", "")
        node.os_version_codename = release.get("VERSION_CODENAME", "")
        node.os_release.update({key: release[key] for key in REPORTED_KEYS if key in release})


def build(_config: None, _errors: CollectorErrors) -> Step:
    return OsReleaseCollector()
