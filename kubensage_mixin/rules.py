"""Recording rules in the kubernetes-mixin's shapes, on kubensage's native names.

Where the kubernetes-mixin records
`node_namespace_pod_container:container_cpu_usage_seconds_total:sum_rate5m` from cAdvisor,
this records `node_namespace_pod_container:kubensage_container_cpu_usage_seconds_total:sum_rate5m`
from the relay, and so on up to namespaces and workloads, so dashboards and alerts can
swap one for the other.

Two kubensage facts shape every per-container rule:
- a node's series come from the one relay replica holding its agent, but during a
  stream's move to another replica both may show it for a moment: per container, the
  rules take the `max` over replicas (summing would count the container twice);
- `workload` and `workload_kind` are empty without Kubernetes enrichment (or for pods
  no controller owns): such a pod counts as its own workload, `workload` = its name and
  `workload_kind="Pod"`, as the advisor groups it, so no container drops out of the
  workload and namespace figures.
"""

from __future__ import annotations

from kubensage_mixin.config import Config
from kubensage_mixin.model import Group, Recording, promql

CONTAINER = "kubensage_container_"
CPU_RATE = "node_namespace_pod_container:kubensage_container_cpu_usage_seconds_total:sum_rate5m"
WORKING_SET = "node_namespace_pod_container:kubensage_container_memory_working_set_bytes"
RSS = "node_namespace_pod_container:kubensage_container_memory_rss_bytes"
REQUESTS = "node_namespace_pod_container:kubensage_container_resource_requests"
LIMITS = "node_namespace_pod_container:kubensage_container_resource_limits"
POD_RECEIVE = "node_namespace_pod:kubensage_pod_network_receive_bytes_total:sum_rate5m"
POD_TRANSMIT = "node_namespace_pod:kubensage_pod_network_transmit_bytes_total:sum_rate5m"

NODE_CPU_UTILISATION = "node:kubensage_node_cpu_utilisation:ratio_rate5m"
NODE_MEMORY_UTILISATION = "node:kubensage_node_memory_utilisation:ratio"
NODE_RECEIVE = "node:kubensage_node_network_receive_bytes_excluding_lo:sum_rate5m"
NODE_TRANSMIT = "node:kubensage_node_network_transmit_bytes_excluding_lo:sum_rate5m"
NODE_CONTAINER_CPU = "node:kubensage_container_cpu_usage_seconds_total:sum_rate5m"
NODE_CONTAINER_MEMORY = "node:kubensage_container_memory_working_set_bytes:sum"


def by_level(level: str, what: str) -> str:
    """The recorded name of `what` summed per `level` ("namespace", "namespace_workload")."""
    return f"{level}:{what}"


def resource_sum(level: str, resource: str, kind: str) -> str:
    """e.g. namespace_workload_cpu:kubensage_container_resource_requests:sum"""
    return f"{level}_{resource}:kubensage_container_resource_{kind}:sum"


def usage_ratio(resource: str, kind: str) -> str:
    """e.g. namespace_workload_cpu:kubensage_container_usage_over_requests:ratio"""
    return f"namespace_workload_{resource}:kubensage_container_usage_over_{kind}:ratio"


def labels(config: Config, *names: str) -> str:
    return ", ".join((config.cluster_label, *names))


def per_container(config: Config, inner: str, *extra: str) -> str:
    """`max` of `inner` (holding SELECTOR where its matchers go) per container, pods
    without a workload named as their own workload of kind Pod."""
    grouping = labels(config, "node", "namespace", "pod", "container", "workload", "workload_kind")
    return per_row(config, inner, grouping + "".join(f", {name}" for name in extra))


def per_row(config: Config, inner: str, grouping: str) -> str:
    owned = inner.replace("SELECTOR", config.selector('workload!=""'))
    unowned = inner.replace("SELECTOR", config.selector('workload=""'))
    return promql(
        f"""
        max by ({grouping}) ({owned})
        or
        label_replace(
          label_replace(
            max by ({grouping}) ({unowned}),
            "workload", "$1", "pod", "(.+)"
          ),
          "workload_kind", "Pod", "workload_kind", ""
        )
        """
    )


def container_rules(config: Config) -> Group:
    pod_grouping = labels(config, "node", "namespace", "pod", "workload", "workload_kind")

    def pod_network(direction: str) -> str:
        name = f"kubensage_pod_network_{direction}_bytes_total"
        # summed over the pod's interfaces after the max over relay replicas
        return promql(
            f"""
            sum by ({pod_grouping}) (
              {per_row(config, f"rate({name}SELECTOR[5m])", pod_grouping + ", interface")}
            )
            """
        )

    return Group(
        "kubensage.rules.container",
        (
            Recording(
                CPU_RATE,
                per_container(config, f"rate({CONTAINER}cpu_usage_seconds_totalSELECTOR[5m])"),
            ),
            Recording(
                WORKING_SET, per_container(config, f"{CONTAINER}memory_working_set_bytesSELECTOR")
            ),
            Recording(RSS, per_container(config, f"{CONTAINER}memory_rss_bytesSELECTOR")),
            Recording(
                REQUESTS, per_container(config, f"{CONTAINER}resource_requestsSELECTOR", "resource")
            ),
            Recording(
                LIMITS, per_container(config, f"{CONTAINER}resource_limitsSELECTOR", "resource")
            ),
            Recording(POD_RECEIVE, pod_network("receive")),
            Recording(POD_TRANSMIT, pod_network("transmit")),
        ),
    )


def node_rules(config: Config) -> Group:
    node = labels(config, "node")
    sel = config.selector

    def node_network(direction: str) -> str:
        name = f"kubensage_node_network_{direction}_bytes_total"
        inner = f"rate({name}{sel(config.node_interface_selector)}[5m])"
        return promql(
            f"""
            sum by ({node}) (
              max by ({labels(config, "node", "device")}) ({inner})
            )
            """
        )

    return Group(
        "kubensage.rules.node",
        (
            Recording(
                NODE_CPU_UTILISATION,
                promql(
                    f"""
                    sum by ({node}) (
                      max by ({labels(config, "node", "mode")}) (
                        rate(kubensage_node_cpu_seconds_total{sel('mode!~"idle|iowait|steal"')}[5m])
                      )
                    )
                    / on ({node})
                    max by ({node}) (kubensage_node_cpus{sel()})
                    """
                ),
            ),
            Recording(
                NODE_MEMORY_UTILISATION,
                promql(
                    f"""
                    1 - (
                      max by ({node}) (kubensage_node_memory_available_bytes{sel()})
                      / on ({node})
                      max by ({node}) (kubensage_node_memory_total_bytes{sel()})
                    )
                    """
                ),
            ),
            Recording(NODE_RECEIVE, node_network("receive")),
            Recording(NODE_TRANSMIT, node_network("transmit")),
            Recording(NODE_CONTAINER_CPU, f"sum by ({node}) ({CPU_RATE})"),
            Recording(NODE_CONTAINER_MEMORY, f"sum by ({node}) ({WORKING_SET})"),
        ),
    )


def aggregate_rules(config: Config, level: str, *grouping: str) -> Group:
    """Namespace or workload totals of the per-container and per-pod rules."""
    by = labels(config, *grouping)
    rules = [
        Recording(
            by_level(level, "kubensage_container_cpu_usage_seconds_total:sum_rate5m"),
            f"sum by ({by}) ({CPU_RATE})",
        ),
        Recording(
            by_level(level, "kubensage_container_memory_working_set_bytes:sum"),
            f"sum by ({by}) ({WORKING_SET})",
        ),
    ]
    for kind, source in (("requests", REQUESTS), ("limits", LIMITS)):
        for resource in ("cpu", "memory"):
            rules.append(
                Recording(
                    resource_sum(level, resource, kind),
                    f'sum by ({by}) ({source}{{resource="{resource}"}})',
                )
            )
    for direction, source in (("receive", POD_RECEIVE), ("transmit", POD_TRANSMIT)):
        rules.append(
            Recording(
                by_level(level, f"kubensage_pod_network_{direction}_bytes_total:sum_rate5m"),
                f"sum by ({by}) ({source})",
            )
        )
    return Group(f"kubensage.rules.{level}", tuple(rules))


def usage_ratio_rules(config: Config) -> Group:
    """Usage over requests and over limits per workload: the fit of its pod specs."""
    level = "namespace_workload"
    usage = {
        "cpu": by_level(level, "kubensage_container_cpu_usage_seconds_total:sum_rate5m"),
        "memory": by_level(level, "kubensage_container_memory_working_set_bytes:sum"),
    }
    by = labels(config, "namespace", "workload", "workload_kind")
    return Group(
        "kubensage.rules.workload_usage_ratios",
        tuple(
            Recording(
                usage_ratio(resource, kind),
                f"{usage[resource]}\n/ on ({by})\n{resource_sum(level, resource, kind)}",
            )
            for resource in ("cpu", "memory")
            for kind in ("requests", "limits")
        ),
    )


def recording_groups(config: Config) -> tuple[Group, ...]:
    return (
        container_rules(config),
        node_rules(config),
        aggregate_rules(config, "namespace", "namespace"),
        aggregate_rules(config, "namespace_workload", "namespace", "workload", "workload_kind"),
        usage_ratio_rules(config),
    )
