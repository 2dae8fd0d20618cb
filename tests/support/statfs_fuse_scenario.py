"""Run inside a private mount and PID namespace (unshare), so the hanging FUSE mount is
seen by nobody else: the node's filesystem collector against a statfs that never
returns. Prints one JSON object of what each cycle reported, for the test to judge.

    unshare --mount --propagation private --pid --fork --mount-proc \\
        python -m tests.support.statfs_fuse_scenario WORKDIR
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

from kubensage_agent.collectors.errors import CollectorErrors
from kubensage_agent.collectors.node import NodeCollector
from kubensage_agent.collectors.node.filesystem import FilesystemCollector, FilesystemConfig
from kubensage_agent.collectors.node.registry import NodeSettings
from kubensage_agent.hostfs import HostPaths
from kubensage_lab.processes import eventually
from tests.support.fuse import HangingFuse

TIMEOUT = 2.0


def main(workdir: Path) -> None:
    errors = CollectorErrors()
    settings = NodeSettings(
        enabled=frozenset({"filesystem"}),
        configs={"filesystem": FilesystemConfig(statfs_timeout=TIMEOUT)},
    )
    collector = NodeCollector(HostPaths(Path("/")), "fuse-node", errors, settings)
    step = collector.steps["filesystem"]
    assert isinstance(step, FilesystemCollector)
    fuse = HangingFuse(workdir / "hang")
    cycles: dict[str, Any] = {}

    def cycle(name: str) -> None:
        started = time.monotonic()
        node = collector.collect()
        cycles[name] = {
            "seconds": time.monotonic() - started,
            "filesystems": {
                fs.mountpoint: {
                    "device": fs.device,
                    "fstype": fs.fstype,
                    "device_error": fs.device_error,
                    "size_bytes": fs.size_bytes if fs.HasField("size_bytes") else None,
                    "files": fs.files if fs.HasField("files") else None,
                }
                for fs in node.filesystems
            },
            # the FUSE side when the cycle returned: the call is still held unanswered
            "held": fuse.held,
            "statfs_requests": fuse.statfs_requests,
            "outstanding": sorted(step.runner.outstanding()),
            "errors": dict(errors.totals),
            "logged": errors.once.active(),
        }

    try:
        cycle("before_mount")
        fuse.mount()
        cycle("stuck")
        cycle("still_stuck")
        fuse.answer_held()
        eventually(lambda: not step.runner.outstanding(), timeout=30)
        cycle("answered")
        fuse.hold()
        cycle("stuck_again")
        fuse.abort()
        eventually(lambda: not step.runner.outstanding(), timeout=30)
        cycle("aborted")
        fuse.unmount()
        cycle("unmounted")
    finally:
        fuse.unmount()
    print(json.dumps({"mountpoint": str(fuse.mountpoint), "timeout": TIMEOUT, **cycles}))


if __name__ == "__main__":
    main(Path(sys.argv[1]))
