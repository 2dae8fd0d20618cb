"""Generated code is current, never a top-level `proto`, and CRI numbers equal upstream's."""

from __future__ import annotations

import filecmp
import importlib.util
import sys
from pathlib import Path

import pytest

from kubensage_api.cri import api_pb2

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "scripts"))
import gen_proto  # noqa: E402

# (message, field, number) from upstream k8s.io/cri-api runtime/v1/api.proto.
UPSTREAM_FIELDS = [
    ("VersionResponse", "runtime_api_version", 4),
    ("PodSandbox", "annotations", 6),
    ("PodSandbox", "runtime_handler", 7),
    ("PodSandboxConfig", "linux", 8),
    ("PodSandboxStatus", "labels", 7),
    ("PodSandboxStatusResponse", "info", 2),
    ("LinuxSandboxSecurityContext", "privileged", 6),
    ("Container", "image_ref", 5),
    ("Container", "image_id", 10),
    ("ContainerConfig", "labels", 9),
    ("ContainerConfig", "linux", 15),
    ("ContainerStatus", "reason", 10),
    ("ContainerStatus", "log_path", 15),
    ("ContainerStatus", "resources", 16),
    ("ContainerStatus", "image_id", 17),
    ("ContainerStats", "writable_layer", 4),
    ("ContainerStats", "swap", 5),
    ("ContainerStats", "io", 6),
    ("CpuUsage", "usage_nano_cores", 3),
    ("CpuUsage", "psi", 4),
    ("MemoryUsage", "rss_bytes", 5),
    ("MemoryUsage", "major_page_faults", 7),
    ("MemoryUsage", "psi", 8),
    ("PsiStats", "full", 1),
    ("PsiStats", "some", 2),
    ("PsiData", "avg300", 4),
    ("LinuxPodSandboxStats", "network", 3),
    ("LinuxPodSandboxStats", "io", 6),
    ("NetworkInterfaceUsage", "tx_errors", 5),
    ("SwapUsage", "swap_usage_bytes", 3),
    ("FilesystemUsage", "inodes_used", 4),
    ("ImageFsInfoResponse", "container_filesystems", 2),
]


def test_generated_modules_match_the_protos(tmp_path: Path) -> None:
    generated = gen_proto.generate(tmp_path)
    stale = [
        str(path.relative_to(tmp_path))
        for path in generated
        if not filecmp.cmp(path, REPO / path.relative_to(tmp_path), shallow=False)
    ]
    assert not stale, f"run `make proto`: stale generated files {stale}"


def test_nothing_is_importable_as_top_level_proto() -> None:
    spec = importlib.util.find_spec("proto")
    assert spec is None or "kubensage" not in str(spec.origin or "")
    assert not (REPO / "proto" / "__init__.py").exists()


@pytest.mark.parametrize(("message", "field", "number"), UPSTREAM_FIELDS)
def test_cri_field_numbers_equal_upstream(message: str, field: str, number: int) -> None:
    descriptor = api_pb2.DESCRIPTOR.message_types_by_name[message]
    assert descriptor.fields_by_name[field].number == number


def test_cri_package_and_services_match_upstream_names() -> None:
    assert api_pb2.DESCRIPTOR.package == "runtime.v1"
    assert set(api_pb2.DESCRIPTOR.services_by_name) == {"RuntimeService", "ImageService"}
    assert api_pb2.ContainerState.Value("CONTAINER_EXITED") == 2
    assert api_pb2.PodSandboxState.Value("SANDBOX_NOTREADY") == 1
    assert api_pb2.NamespaceMode.Value("NODE") == 2
