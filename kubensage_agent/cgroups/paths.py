"""The runtime's `cgroupsPath` -> the container's cgroup relative to the hierarchy root.

The relative path is also the name the kubelet's cAdvisor gives the container (its `id`
label), and the same under every v1 controller's mount and the v2 unified mount.
"""

from __future__ import annotations

MAX_PATH = 4096
SLICE = ".slice"
DEFAULT_SLICE = "system.slice"


def expand_slice(slice_name: str) -> str:
    """A systemd slice as the directory systemd gives it: nesting is spelled with dashes,
    so `kubepods-burstable-pod1.slice` is /kubepods.slice/kubepods-burstable.slice/
    kubepods-burstable-pod1.slice (as runc's and the kubelet's ExpandSlice)."""
    if not slice_name.endswith(SLICE) or len(slice_name) == len(SLICE) or "/" in slice_name:
        raise ValueError(f"invalid slice name {slice_name!r}")
    stem = slice_name[: -len(SLICE)]
    if stem == "-":
        return "/"
    path, prefix = [], ""
    for component in stem.split("-"):
        if not component:
            raise ValueError(f"invalid slice name {slice_name!r}")
        path.append(f"/{prefix}{component}{SLICE}")
        prefix += component + "-"
    return "".join(path)


def _systemd_path(cgroups_path: str) -> str:
    """`slice:prefix:name` (containerd `...:cri-containerd:<id>`, CRI-O `...:crio:<id>`),
    expanded as runc and crun do: the unit is `<prefix>-<name>.scope` in the slice, or the
    name itself when it is a slice."""
    parent, prefix, name = cgroups_path.split(":")
    if not name:
        raise ValueError(f"systemd cgroupsPath without a name: {cgroups_path!r}")
    unit = name if name.endswith(SLICE) else f"{prefix}-{name}.scope"
    if "/" in unit:
        raise ValueError(f"invalid unit name {unit!r}")
    slice_dir = expand_slice(parent or DEFAULT_SLICE)
    return f"{slice_dir.rstrip('/')}/{unit}"


def cgroup_relative_path(cgroups_path: str) -> str:
    """The container's cgroup from `runtimeSpec.linux.cgroupsPath`, for either driver:
    cgroupfs gives the path itself (/kubepods/burstable/pod<uid>/<id>), systemd a
    `slice:prefix:name` triple. Raises ValueError for anything else."""
    if not cgroups_path or len(cgroups_path) > MAX_PATH:
        raise ValueError("cgroupsPath empty or too long")
    if not cgroups_path.startswith("/") and cgroups_path.count(":") == 2:
        relative = _systemd_path(cgroups_path)
    else:
        relative = "/" + cgroups_path.strip("/")
    if any(part in (".", "..") for part in relative.split("/")):
        raise ValueError(f"cgroupsPath leaves its hierarchy: {cgroups_path!r}")
    return relative
