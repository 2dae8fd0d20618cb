"""The Kubernetes API client both the relay and the advisor use: in a pod its service
account, outside a kubeconfig, with neither none (the caller says what it does without)."""

from __future__ import annotations

import logging
import os
from pathlib import Path

from kubernetes import client, config
from kubernetes.config.config_exception import ConfigException

logger = logging.getLogger(__name__)


def load_api_client(kubeconfig: str | None) -> tuple[client.ApiClient, str] | None:
    """(client, context cluster name) from the service account or a kubeconfig, else None."""
    if not kubeconfig and os.environ.get("KUBERNETES_SERVICE_HOST"):
        try:
            config.load_incluster_config()
            return client.ApiClient(), ""
        except ConfigException as exc:
            logger.warning("in-cluster Kubernetes config unusable: %s", exc)
    path = kubeconfig or os.environ.get("KUBECONFIG") or str(Path.home() / ".kube" / "config")
    if not Path(path).exists():
        return None
    configuration = client.Configuration()
    try:
        config.load_kube_config(config_file=path, client_configuration=configuration)
        _, active = config.list_kube_config_contexts(config_file=path)
    except (ConfigException, OSError, ValueError) as exc:
        logger.warning("kubeconfig %s unusable: %s", path, exc)
        return None
    return client.ApiClient(configuration), str(active.get("context", {}).get("cluster", ""))
