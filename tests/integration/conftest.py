"""Real components for integration tests: a private containerd started and stopped by the suite."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from kubensage_lab.containerd import Containerd, binaries_present
from kubensage_lab.cri_driver import CriDriver
from tests.conftest import require


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/integration" in str(item.fspath):
            item.add_marker(pytest.mark.integration)


@pytest.fixture(scope="session")
def containerd() -> Iterator[Containerd]:
    missing = binaries_present()
    require(not missing, f"containerd integration needs {', '.join(missing)} on PATH")
    require(os.geteuid() == 0, "containerd integration needs root")
    require(Path("/bin/busybox").exists(), "busybox-static provides the test images")
    workdir = Path(tempfile.mkdtemp(prefix="ksctrd-", dir="/tmp"))
    daemon = Containerd(workdir)
    try:
        daemon.start()
        daemon.import_images()
        yield daemon
    finally:
        daemon.stop()
        shutil.rmtree(workdir, ignore_errors=True)


@pytest.fixture
def driver(containerd: Containerd) -> Iterator[CriDriver]:
    cri = CriDriver(containerd.endpoint, containerd.cgroup_root)
    yield cri
    cri.close()
