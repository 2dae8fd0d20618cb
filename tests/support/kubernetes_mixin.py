"""The kubernetes-mixin's expressions that read cAdvisor families: its recording rules,
its CPUThrottlingHigh alert and its dashboards' queries, in the mixin's own shape and with
its default selectors (config.libsonnet), rendered as the mixin renders them.

Jsonnet's `%(name)s` substitution is Python's, so each template reads as in the mixin's
source. What a test must shorten is named: `window` stands for the rules' `[5m]` (a rate
over five minutes needs five minutes of data) and for Grafana's `$__rate_interval`;
`$cluster` is empty, as in a single-cluster Grafana; `$namespace` and `$pod` are the
dashboard's selections.
"""

from __future__ import annotations

from typing import Any

DEFAULTS: dict[str, Any] = {
    "cadvisorSelector": 'job="cadvisor"',
    "kubeStateMetricsSelector": 'job="kube-state-metrics"',
    "clusterLabel": "cluster",
    "namespaceLabel": "namespace",
    "containerfsSelector": 'container!=""',
    "diskDeviceSelector": (
        'device=~"(/dev.+)|mmcblk.p.+|nvme.+|rbd.+|sd.+|vd.+|xvd.+|dm-.+|dasd.+"'
    ),
    "cpuThrottlingSelector": "",
    "cpuThrottlingPercent": 25,
    "multiplier": 8,
}

# the node of each pod, one series per pod, from kube-state-metrics
POD_NODE = """topk by (%(clusterLabel)s, namespace, pod) (1,
  max by (%(clusterLabel)s, namespace, pod, node) (kube_pod_info{node!=""})
)"""

CPU_RULE = "node_namespace_pod_container:container_cpu_usage_seconds_total:sum_rate5m"
CPU_IRATE_RULE = "node_namespace_pod_container:container_cpu_usage_seconds_total:sum_irate"
MEMORY_FAMILIES = (
    "container_memory_working_set_bytes",
    "container_memory_rss",
    "container_memory_cache",
    "container_memory_swap",
)


def memory_rule(family: str) -> str:
    return f"node_namespace_pod_container:{family}"


def _render(template: str, window: str, **more: str) -> str:
    return template % {**DEFAULTS, "window": window, "podNode": POD_NODE % DEFAULTS, **more}


def rule_groups(window: str) -> list[dict[str, Any]]:
    """The groups of apps.libsonnet and resource_alerts.libsonnet that read cAdvisor's
    container families, as a Prometheus rule file holds them."""
    cpu = """sum by (%(clusterLabel)s, namespace, pod, container) (
  %(rate)s(container_cpu_usage_seconds_total{%(cadvisorSelector)s, image!=""}[%(window)s])
) * on (%(clusterLabel)s, namespace, pod) group_left(node) %(podNode)s"""
    groups: list[dict[str, Any]] = [
        {
            "name": "k8s.rules.container_cpu_usage_seconds_total",
            "rules": [
                {"record": CPU_RULE, "expr": _render(cpu, window, rate="rate")},
                # the last two samples: right with any history, so the mixin's [5m] stays
                {"record": CPU_IRATE_RULE, "expr": _render(cpu, "5m", rate="irate")},
            ],
        }
    ]
    for family in MEMORY_FAMILIES:
        memory = (
            family
            + """{%(cadvisorSelector)s, image!=""}
* on (%(clusterLabel)s, namespace, pod) group_left(node) %(podNode)s"""
        )
        groups.append(
            {
                "name": f"k8s.rules.{family}",
                "rules": [{"record": memory_rule(family), "expr": _render(memory, window)}],
            }
        )
    groups.append(
        {
            "name": "kubernetes-resources",
            "rules": [
                {
                    "alert": "CPUThrottlingHigh",
                    "expr": cpu_throttling_high(),
                    "for": "15m",
                    "labels": {"severity": "info"},
                    "annotations": {
                        "description": "{{ $value | humanizePercentage }} throttling of CPU "
                        "in namespace {{ $labels.namespace }} for container "
                        "{{ $labels.container }} in pod {{ $labels.pod }}.",
                        "summary": "Processes experience elevated CPU throttling.",
                    },
                }
            ],
        }
    )
    return groups


# resource_alerts.libsonnet, unchanged: both sides are increases over the same five minutes
# of the same scrapes, so their ratio is right from the second scrape on
CPU_THROTTLING_HIGH = """sum without (id, metrics_path, name, image, endpoint, job, node) (
  topk by (%(clusterLabel)s, %(namespaceLabel)s, pod, container, instance) (1,
    increase(
      container_cpu_cfs_throttled_periods_total{container!="", %(cadvisorSelector)s,
        %(cpuThrottlingSelector)s}
    [5m])
  )
)
/ on (%(clusterLabel)s, %(namespaceLabel)s, pod, container, instance) group_left
sum without (id, metrics_path, name, image, endpoint, job, node) (
  topk by (%(clusterLabel)s, %(namespaceLabel)s, pod, container, instance) (1,
    increase(
      container_cpu_cfs_periods_total{%(cadvisorSelector)s, %(cpuThrottlingSelector)s}
    [5m])
  )
)
> ( %(cpuThrottlingPercent)s / 100 )"""


def cpu_throttling_high() -> str:
    return _render(CPU_THROTTLING_HIGH, "5m")


def dashboard(template: str, window: str, namespace: str, pod: str = "") -> str:
    """A dashboard panel's query with Grafana's variables set."""
    query = _render(template, window)
    for variable, value in (
        ("$__rate_interval", window),
        ("$cluster", ""),
        ("$namespace", namespace),
        ("$pod", pod),
    ):
        query = query.replace(variable, value)
    return query


# dashboards/resources/queries/pod.libsonnet ("Kubernetes / Compute Resources / Pod")
POD_CPU_THROTTLING = (
    "sum(increase(container_cpu_cfs_throttled_periods_total{%(cadvisorSelector)s, "
    'namespace="$namespace", pod="$pod", container!="", %(clusterLabel)s="$cluster"}'
    "[$__rate_interval])) by (container) /"
    "sum(increase(container_cpu_cfs_periods_total{%(cadvisorSelector)s, "
    'namespace="$namespace", pod="$pod", container!="", %(clusterLabel)s="$cluster"}'
    "[$__rate_interval])) by (container)"
)
POD_MEMORY_WORKING_SET = (
    "sum(max by (%(clusterLabel)s, %(namespaceLabel)s, pod, container)"
    "(container_memory_working_set_bytes{%(cadvisorSelector)s, "
    '%(clusterLabel)s="$cluster", namespace="$namespace", pod="$pod", container!="", '
    'image!=""})) by (container)'
)


def pod_memory(family: str) -> str:
    """The Pod dashboard's RSS, Cache and Swap columns."""
    return (
        "sum(max by (%(clusterLabel)s, %(namespaceLabel)s, pod, container)"
        f"({family}"
        '{%(cadvisorSelector)s, %(clusterLabel)s="$cluster", namespace="$namespace", '
        'pod="$pod", container != "", container != "POD"})) by (container)'
    )


def pod_storage(family: str) -> str:
    """The Pod dashboard's Storage IO table, one column per family."""
    return (
        f"sum by(container) (rate({family}"
        "{%(cadvisorSelector)s, %(diskDeviceSelector)s, %(containerfsSelector)s, "
        '%(clusterLabel)s="$cluster", namespace="$namespace", pod="$pod"}'
        "[$__rate_interval]))"
    )


def namespace_storage(family: str) -> str:
    """The Namespace dashboard's Storage IO table, one row per pod."""
    return (
        f"sum by(pod) (rate({family}"
        "{%(cadvisorSelector)s, %(diskDeviceSelector)s, %(containerfsSelector)s, "
        '%(clusterLabel)s="$cluster", namespace="$namespace"}[$__rate_interval]))'
    )


def pod_bandwidth(direction: str) -> str:
    """The Pod dashboard's Receive / Transmit Bandwidth panels, in bits per second (the
    mixin takes irate for receive and rate for transmit)."""
    rate = "irate" if direction == "receive" else "rate"
    return (
        f"sum((%(multiplier)s * {rate}(container_network_{direction}_bytes_total"
        '{%(cadvisorSelector)s, %(clusterLabel)s="$cluster", namespace="$namespace", '
        'pod=~"$pod"}[$__rate_interval]))) by (pod)'
    )


def namespace_bandwidth_by_pod(direction: str) -> str:
    """ "Networking / Namespace (Pods)" bandwidth: pods in their own network namespace only."""
    return (
        "sum by (pod) (\n"
        f"    (%(multiplier)s * rate(container_network_{direction}_bytes_total"
        '{%(clusterLabel)s="$cluster",namespace=~"$namespace"}[$__rate_interval]))\n'
        "  * on (%(clusterLabel)s,namespace,pod) group_left ()\n"
        "    topk by (%(clusterLabel)s,namespace,pod) (\n"
        "      1,\n"
        "      max by (%(clusterLabel)s,namespace,pod) "
        '(kube_pod_info{host_network="false"})\n'
        "    )\n"
        ")"
    )
