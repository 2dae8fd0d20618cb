"""Test-wide rules: integration dependencies may be missing on a laptop, never in CI."""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")

# Tests talk to loopback only: no relay started by a test may find a real cluster through
# the developer's kubeconfig or a pod's service account. Enrichment tests pass their own.
os.environ["KUBECONFIG"] = "/nonexistent/kubensage-tests/kubeconfig"
os.environ.pop("KUBERNETES_SERVICE_HOST", None)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "slow: takes a minute or more of real time (e.g. a whole real pipeline)"
    )


def require(condition: bool, reason: str) -> None:
    """Skip when a real component is missing, but fail the run in CI, where it must exist."""
    if condition:
        return
    if IN_CI:
        pytest.fail(f"CI must provide this: {reason}", pytrace=False)
    pytest.skip(reason)


@pytest.fixture
def sock_dir() -> Iterator[Path]:
    """A short scratch directory: unix socket paths are limited to 107 bytes, and pytest's
    tmp_path can be longer."""
    path = Path(os.path.join("/tmp", f"ks-{os.getpid()}-{time.monotonic_ns()}"))
    path.mkdir()
    yield path
    shutil.rmtree(path, ignore_errors=True)
