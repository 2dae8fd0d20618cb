"""The node's own figures, one collector per kernel source (registry.py lists them):
each fails alone, costing only its own fields."""

from __future__ import annotations

import os
import socket

from kubensage_agent.collectors.errors import CollectorErrors
from kubensage_agent.collectors.node.base import NodeFiles, Step
from kubensage_agent.collectors.node.registry import COLLECTORS, NodeSettings
from kubensage_agent.hostfs import HostPaths
from kubensage_api.telemetry import telemetry_pb2 as tm


class NodeCollector:
    def __init__(
        self,
        paths: HostPaths,
        node_name: str,
        errors: CollectorErrors,
        settings: NodeSettings | None = None,
    ) -> None:
        settings = settings if settings is not None else NodeSettings()
        settings.validate()
        self.paths = paths
        self.node_name = node_name
        self.errors = errors
        self.steps: dict[str, Step] = {
            spec.name: spec.build(settings.config_for(spec), errors)
            for spec in COLLECTORS
            if spec.name in settings.enabled
        }

    def collect(self, into: tm.Node | None = None) -> tm.Node:
        """The node's figures, filled into `into` (a new message when None)."""
        node = into if into is not None else tm.Node()
        node.name = self.node_name
        files = NodeFiles(self.paths)
        for name, step in self.steps.items():
            with self.errors.guard(name):
                step(files, node)
        return node


def default_node_name() -> str:
    """$NODE_NAME, else the hostname lowercased as the kubelet names its node."""
    return os.environ.get("NODE_NAME") or socket.gethostname().lower()
