"""Prometheus label names made from Kubernetes label keys."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable

INVALID_LABEL_CHARS = re.compile(r"[^a-zA-Z0-9_]")


def pod_label_names(keys: Iterable[str], prefix: str = "label_") -> dict[str, str]:
    """Map Kubernetes label keys to valid, distinct Prometheus label names.

    `app.kubernetes.io/name` becomes `label_app_kubernetes_io_name`; when two keys
    sanitize to the same name, the later one (in sorted order) gets a short hash of
    its original key appended, so neither is lost and the mapping is stable.
    """
    names: dict[str, str] = {}
    used: set[str] = set()
    for key in sorted(set(keys)):
        name = prefix + INVALID_LABEL_CHARS.sub("_", key)
        if name in used:
            name = f"{name}_{hashlib.sha256(key.encode()).hexdigest()[:8]}"
        used.add(name)
        names[key] = name
    return names
