"""The four dashboards: Fleet (kubensage's own health), Node, Workload and Pod.

Raw series are selected with the relay selector; recorded series (which carry no job)
with the cluster only. A pod no controller owns (or every pod, without Kubernetes
enrichment) is its own workload of kind Pod, as in the recording rules; raw queries on
the Workload dashboard therefore also match `workload=""` series by pod name.
"""

from __future__ import annotations

from typing import Any

from kubensage_mixin import rules
from kubensage_mixin.config import Config
from kubensage_mixin.grafana import (
    Panel,
    Query,
    dashboard,
    datasource_variable,
    query_variable,
    row,
    stat,
    timeseries,
)

RATE = "$__rate_interval"


class Boards:
    def __init__(self, config: Config) -> None:
        self.config = config
        self.cluster = f'{config.cluster_label}=~"$cluster"'

    def raw(self, *matchers: str) -> str:
        """Matchers of a raw series: relay selector, cluster, more."""
        return self.config.selector(self.cluster, *matchers)

    def recorded(self, *matchers: str) -> str:
        return "{" + ", ".join((self.cluster, *matchers)) + "}"

    def cluster_variable(self) -> dict[str, Any]:
        return query_variable(
            "cluster",
            "Cluster",
            f"kubensage_relay_connected_agents{self.config.selector()}",
            self.config.cluster_label,
            include_all=True,
        )

    def fleet(self) -> dict[str, Any]:
        raw, c = self.raw, self.config.cluster_label
        per_node = f"max by ({c}, node)"
        not_ok = raw('state!="ok"')
        panels: list[Panel] = [
            row("Agents"),
            stat(
                "Agents connected",
                "Agent streams open on all relays.",
                Query(f"sum(kubensage_relay_connected_agents{raw()})"),
            ),
            stat(
                "Nodes reporting",
                "Nodes whose agent holds a stream to a relay now.",
                Query(
                    f"count({per_node} (kubensage_relay_node_connected{raw()}) == 1) or vector(0)"
                ),
            ),
            stat(
                "Nodes stale",
                "Nodes without a report for more than three collection intervals.",
                Query(
                    f"count(time() - {per_node} (kubensage_relay_last_report_timestamp_seconds{raw()})"
                    f" > 3 * {per_node} (kubensage_agent_interval_seconds{raw()})) or vector(0)"
                ),
            ),
            stat(
                "Relays up",
                "Relay replicas Prometheus scrapes successfully.",
                Query(f"sum(up{raw()})"),
            ),
            timeseries(
                "Report age",
                "Seconds since each node's newest report reached its relay: the freshness "
                "of its figures (stays under a few collection intervals when healthy).",
                Query(
                    f"max by (node) (time() - kubensage_relay_last_report_timestamp_seconds{raw()})",
                    "{{node}}",
                ),
                unit="s",
            ),
            timeseries(
                "Collection cycle time",
                "How long each agent's last collection took; near the interval means the "
                "agent skips ticks.",
                Query(f"max by (node) (kubensage_agent_cycle_duration_seconds{raw()})", "{{node}}"),
                Query(
                    f"max by (node) (kubensage_agent_interval_seconds{raw()})", "{{node}} interval"
                ),
                unit="s",
            ),
            timeseries(
                "Queue and spool",
                "Reports waiting for an acknowledgement in each agent, and the bytes its disk "
                "spool holds.",
                Query(f"max by (node) (kubensage_agent_queue_depth{raw()})", "{{node}} queued"),
                Query(
                    f"max by (node) (kubensage_agent_spooled_bytes{raw()})", "{{node}} spool bytes"
                ),
            ),
            timeseries(
                "Dropped reports and errors",
                "Per second: reports dropped for a full queue or spool, failed CRI calls, "
                "failed collectors, refused check runs.",
                Query(
                    f"max by (node) (rate(kubensage_agent_dropped_reports_total{raw()}[{RATE}]))",
                    "{{node}} dropped",
                ),
                Query(
                    f"max by (node) (rate(kubensage_agent_cri_errors_total{raw()}[{RATE}]))",
                    "{{node}} CRI errors",
                ),
                Query(
                    f"max by (node, collector) "
                    f"(rate(kubensage_agent_collector_errors_total{raw()}[{RATE}]))",
                    "{{node}} {{collector}} errors",
                ),
                Query(
                    f"max by (node) (rate(kubensage_agent_check_errors_total{raw()}[{RATE}]))",
                    "{{node}} check errors",
                ),
            ),
            row("Check scripts"),
            timeseries(
                "Checks by state",
                "Node check scripts in each state (ok, warning, critical, unknown); the "
                "relay's fleet page shows the output of those not ok.",
                Query(
                    f"count by (state) (max by ({c}, node, check, state) "
                    f"(kubensage_check_status{raw()}) == 1)",
                    "{{state}}",
                ),
                stacked=True,
            ),
            timeseries(
                "Checks not ok",
                "Each check that is not ok, by node.",
                Query(
                    f"max by (node, check, state) (kubensage_check_status{not_ok}) == 1",
                    "{{node}} {{check}} {{state}}",
                ),
            ),
            row("Relays"),
            timeseries(
                "Reports received",
                "Reports per second each relay accepted into its node state.",
                Query(
                    f"sum by (instance) (rate(kubensage_relay_reports_received_total{raw()}[{RATE}]))",
                    "{{instance}}",
                ),
            ),
            timeseries(
                "Reports and agents refused",
                "Per second, by reason: reports acknowledged but not stored, messages refused "
                "while decoding, streams refused for their credentials.",
                Query(
                    f"sum by (instance, reason) "
                    f"(rate(kubensage_relay_reports_rejected_total{raw()}[{RATE}]))",
                    "{{instance}} rejected {{reason}}",
                ),
                Query(
                    f"sum by (instance, reason) "
                    f"(rate(kubensage_relay_decode_errors_total{raw()}[{RATE}]))",
                    "{{instance}} decode {{reason}}",
                ),
                Query(
                    f"sum by (instance, reason) "
                    f"(rate(kubensage_relay_auth_failures_total{raw()}[{RATE}]))",
                    "{{instance}} auth {{reason}}",
                ),
            ),
            timeseries(
                "Report delay",
                "99th percentile of the delay from collection on the node to acceptance at "
                "the relay, and of the time to validate and store one report.",
                Query(
                    "histogram_quantile(0.99, sum by (instance, le) "
                    f"(rate(kubensage_relay_report_age_seconds_bucket{raw()}[{RATE}])))",
                    "{{instance}} collection to acceptance",
                ),
                Query(
                    "histogram_quantile(0.99, sum by (instance, le) "
                    f"(rate(kubensage_relay_ingest_duration_seconds_bucket{raw()}[{RATE}])))",
                    "{{instance}} ingest",
                ),
                unit="s",
            ),
            timeseries(
                "Remote write samples",
                "Samples per second by what became of them, per receiver.",
                Query(
                    f"sum by (instance, url, outcome) "
                    f"(rate(kubensage_relay_remote_write_samples_total{raw()}[{RATE}]))",
                    "{{instance}} {{url}} {{outcome}}",
                ),
            ),
            timeseries(
                "Remote write lag",
                "Age of the newest sample each receiver took.",
                Query(
                    "time() - max by (instance, url) "
                    f"(kubensage_relay_remote_write_highest_sent_timestamp_seconds{raw()})",
                    "{{instance}} {{url}}",
                ),
                unit="s",
            ),
            timeseries(
                "Remote write queue",
                "Share of each receiver's queue bound in use; at 100% reports wait before "
                "their acknowledgement and agents spool.",
                Query(
                    f"max by (instance, url) (kubensage_relay_remote_write_queue_bytes{raw()}) "
                    f"/ max by (instance, url) (kubensage_relay_remote_write_queue_max_bytes{raw()})",
                    "{{instance}} {{url}}",
                ),
                unit="percentunit",
            ),
        ]
        return dashboard(
            "kubensage-fleet",
            "kubensage / Fleet",
            "kubensage's own health: agents and relays connected, freshness, cycle time, "
            "queues, drops and errors, check scripts, remote write.",
            [datasource_variable(), self.cluster_variable()],
            panels,
        )

    def node(self) -> dict[str, Any]:
        raw, rec = self.raw, self.recorded
        node = 'node="$node"'
        busy = raw(node, 'mode!="idle"')
        variables = [
            datasource_variable(),
            self.cluster_variable(),
            query_variable("node", "Node", f"kubensage_node_info{raw()}", "node"),
        ]
        panels = [
            stat("CPUs", "Logical CPUs.", Query(f"max(kubensage_node_cpus{raw(node)})")),
            stat(
                "Memory",
                "Memory total.",
                Query(f"max(kubensage_node_memory_total_bytes{raw(node)})"),
                unit="bytes",
            ),
            stat(
                "Uptime",
                "Time since the node booted.",
                Query(f"time() - max(kubensage_node_boot_time_seconds{raw(node)})"),
                unit="s",
            ),
            stat(
                "Pods",
                "Pods on the node.",
                Query(f"count(max by (namespace, pod) (kubensage_pod_info{raw(node)}))"),
            ),
            timeseries(
                "CPU utilisation",
                "Share of the node's CPUs busy (not idle, iowait or steal).",
                Query(f"{rules.NODE_CPU_UTILISATION}{rec(node)}", "utilisation"),
                unit="percentunit",
            ),
            timeseries(
                "CPU by mode",
                "CPU seconds per second in each mode, summed over CPUs.",
                Query(
                    f"max by (mode) (rate(kubensage_node_cpu_seconds_total{busy}[{RATE}]))",
                    "{{mode}}",
                ),
                stacked=True,
            ),
            timeseries(
                "Load",
                "Load averages against the number of CPUs.",
                Query(f"max(kubensage_node_load1{raw(node)})", "1m"),
                Query(f"max(kubensage_node_load5{raw(node)})", "5m"),
                Query(f"max(kubensage_node_load15{raw(node)})", "15m"),
                Query(f"max(kubensage_node_cpus{raw(node)})", "CPUs"),
            ),
            timeseries(
                "Memory",
                "Memory utilisation: 1 - available / total.",
                Query(f"{rules.NODE_MEMORY_UTILISATION}{rec(node)}", "utilisation"),
                unit="percentunit",
            ),
            timeseries(
                "Pressure",
                "PSI: share of time some tasks waited for CPU, memory or I/O.",
                *(
                    Query(
                        f"max(rate(kubensage_node_pressure_{resource}_waiting_seconds_total{raw(node)}[{RATE}]))",
                        resource,
                    )
                    for resource in ("cpu", "memory", "io")
                ),
                unit="percentunit",
            ),
            timeseries(
                "Network",
                "Bytes per second received (positive) and transmitted, loopback left out.",
                Query(f"{rules.NODE_RECEIVE}{rec(node)}", "received"),
                Query(f"{rules.NODE_TRANSMIT}{rec(node)}", "transmitted"),
                unit="Bps",
            ),
            timeseries(
                "Disk I/O",
                "Bytes per second read and written per block device.",
                Query(
                    f"max by (device) (rate(kubensage_node_disk_read_bytes_total{raw(node)}[{RATE}]))",
                    "{{device}} read",
                ),
                Query(
                    f"max by (device) (rate(kubensage_node_disk_written_bytes_total{raw(node)}[{RATE}]))",
                    "{{device}} written",
                ),
                unit="Bps",
            ),
            timeseries(
                "Filesystem space used",
                "Share of each filesystem's space in use.",
                Query(
                    f"1 - max by (mountpoint) (kubensage_node_filesystem_available_bytes{raw(node)})"
                    f" / max by (mountpoint) (kubensage_node_filesystem_size_bytes{raw(node)})",
                    "{{mountpoint}}",
                ),
                unit="percentunit",
            ),
            timeseries(
                "Container CPU by pod",
                "CPU cores each pod's containers use on this node.",
                Query(
                    f"sum by (namespace, pod) ({rules.CPU_RATE}{rec(node)})",
                    "{{namespace}}/{{pod}}",
                ),
                stacked=True,
            ),
            timeseries(
                "Container memory by pod",
                "Working set of each pod's containers on this node.",
                Query(
                    f"sum by (namespace, pod) ({rules.WORKING_SET}{rec(node)})",
                    "{{namespace}}/{{pod}}",
                ),
                unit="bytes",
                stacked=True,
            ),
        ]
        return dashboard(
            "kubensage-node",
            "kubensage / Node",
            "One node: CPU, memory, load, pressure, network, disks and filesystems, and "
            "what its pods use.",
            variables,
            panels,
        )

    def workload_raw(self, template: str) -> str:
        """`template` (METRIC{SELECTOR}) for the workload's containers: owned series by
        workload, series of an unowned pod by its name."""
        owned = template.replace(
            "SELECTOR",
            self.raw('namespace="$namespace"', 'workload="$workload"', 'workload_kind="$kind"'),
        )
        unowned = template.replace(
            "SELECTOR", self.raw('namespace="$namespace"', 'workload=""', 'pod="$workload"')
        )
        return f"({owned} or {unowned})"

    def workload(self) -> dict[str, Any]:
        rec = self.recorded
        level = "namespace_workload"
        cpu = rules.by_level(level, "kubensage_container_cpu_usage_seconds_total:sum_rate5m")
        memory = rules.by_level(level, "kubensage_container_memory_working_set_bytes:sum")
        namespace, kind = 'namespace="$namespace"', 'workload_kind="$kind"'
        this = rec(namespace, 'workload="$workload"', kind)
        variables = [
            datasource_variable(),
            self.cluster_variable(),
            query_variable("namespace", "Namespace", f"{cpu}{rec()}", "namespace"),
            query_variable("kind", "Kind", cpu + rec(namespace), "workload_kind"),
            query_variable("workload", "Workload", cpu + rec(namespace, kind), "workload"),
        ]
        throttled = self.workload_raw(
            f"increase(kubensage_container_cpu_cfs_throttled_periods_totalSELECTOR[{RATE}])"
        )
        periods = self.workload_raw(
            f"increase(kubensage_container_cpu_cfs_periods_totalSELECTOR[{RATE}])"
        )
        panels = [
            timeseries(
                "CPU usage, requests and limits",
                "CPU cores the workload's containers use, against the sum of their requests "
                "and limits (requests and limits need Kubernetes enrichment).",
                Query(f"{cpu}{this}", "usage"),
                Query(f"{rules.resource_sum(level, 'cpu', 'requests')}{this}", "requests"),
                Query(f"{rules.resource_sum(level, 'cpu', 'limits')}{this}", "limits"),
            ),
            timeseries(
                "Memory usage, requests and limits",
                "Working set of the workload's containers against their requests and limits.",
                Query(f"{memory}{this}", "working set"),
                Query(f"{rules.resource_sum(level, 'memory', 'requests')}{this}", "requests"),
                Query(f"{rules.resource_sum(level, 'memory', 'limits')}{this}", "limits"),
                unit="bytes",
            ),
            timeseries(
                "Usage over requests and limits",
                "Usage divided by requests (above 1: more than requested) and by limits "
                "(near 1: about to be throttled or OOM-killed).",
                *(
                    Query(f"{rules.usage_ratio(resource, kind)}{this}", f"{resource} / {kind}")
                    for resource in ("cpu", "memory")
                    for kind in ("requests", "limits")
                ),
                unit="percentunit",
            ),
            timeseries(
                "CPU throttling",
                "Share of CFS periods in which each container was throttled by its CPU limit.",
                Query(
                    f"sum by (pod, container) ({throttled}) / sum by (pod, container) ({periods})",
                    "{{pod}}/{{container}}",
                ),
                unit="percentunit",
            ),
            timeseries(
                "CPU by pod",
                "CPU cores each pod of the workload uses.",
                Query(f"sum by (pod) ({rules.CPU_RATE}{this})", "{{pod}}"),
                stacked=True,
            ),
            timeseries(
                "Memory by pod",
                "Working set of each pod of the workload.",
                Query(f"sum by (pod) ({rules.WORKING_SET}{this})", "{{pod}}"),
                unit="bytes",
                stacked=True,
            ),
            timeseries(
                "OOM kills",
                "Processes the OOM killer ended in each container, per interval.",
                Query(
                    "sum by (pod, container) ("
                    + self.workload_raw(
                        f"increase(kubensage_container_oom_kills_totalSELECTOR[{RATE}])"
                    )
                    + ")",
                    "{{pod}}/{{container}}",
                ),
            ),
            timeseries(
                "Restarts",
                "Restart attempt number of each container.",
                Query(
                    "max by (pod, container) ("
                    + self.workload_raw("kubensage_container_restartsSELECTOR")
                    + ")",
                    "{{pod}}/{{container}}",
                ),
            ),
            timeseries(
                "Network",
                "Bytes per second the workload's pods receive and transmit (pods with their "
                "own network namespace).",
                Query(
                    f"{rules.by_level(level, 'kubensage_pod_network_receive_bytes_total:sum_rate5m')}{this}",
                    "received",
                ),
                Query(
                    f"{rules.by_level(level, 'kubensage_pod_network_transmit_bytes_total:sum_rate5m')}{this}",
                    "transmitted",
                ),
                unit="Bps",
            ),
            timeseries(
                "Disk I/O",
                "Bytes per second the workload's containers read and write, per pod.",
                Query(
                    "sum by (pod) ("
                    + self.workload_raw(
                        f"rate(kubensage_container_block_read_bytes_totalSELECTOR[{RATE}])"
                    )
                    + ")",
                    "{{pod}} read",
                ),
                Query(
                    "sum by (pod) ("
                    + self.workload_raw(
                        f"rate(kubensage_container_block_written_bytes_totalSELECTOR[{RATE}])"
                    )
                    + ")",
                    "{{pod}} written",
                ),
                unit="Bps",
            ),
        ]
        return dashboard(
            "kubensage-workload",
            "kubensage / Workload",
            "One workload (a pod without a controller counts as its own, of kind Pod): usage "
            "against requests and limits, throttling, OOM kills, restarts, network, disk I/O.",
            variables,
            panels,
        )

    def pod(self) -> dict[str, Any]:
        raw, rec = self.raw, self.recorded
        this = ('namespace="$namespace"', 'pod="$pod"')
        variables = [
            datasource_variable(),
            self.cluster_variable(),
            query_variable("namespace", "Namespace", f"kubensage_pod_info{raw()}", "namespace"),
            query_variable("pod", "Pod", "kubensage_pod_info" + raw(this[0]), "pod"),
        ]

        def resource(record: str, name: str, kind: str) -> Query:
            selector = rec(*this, f'resource="{name}"')
            return Query(
                f"max by (container) ({record}{selector})",
                "{{container}} " + kind,
            )

        def per_container(metric: str, unit_rate: bool = True) -> str:
            inner = f"rate({metric}{raw(*this)}[{RATE}])" if unit_rate else f"{metric}{raw(*this)}"
            return f"max by (container) ({inner})"

        panels = [
            timeseries(
                "CPU usage, requests and limits",
                "CPU cores each container uses, against its request and limit.",
                Query(f"max by (container) ({rules.CPU_RATE}{rec(*this)})", "{{container}} usage"),
                resource(rules.REQUESTS, "cpu", "request"),
                resource(rules.LIMITS, "cpu", "limit"),
            ),
            timeseries(
                "Memory usage, requests and limits",
                "Working set of each container against its request and limit.",
                Query(
                    f"max by (container) ({rules.WORKING_SET}{rec(*this)})",
                    "{{container}} working set",
                ),
                resource(rules.REQUESTS, "memory", "request"),
                resource(rules.LIMITS, "memory", "limit"),
                unit="bytes",
            ),
            timeseries(
                "CPU throttling",
                "Share of CFS periods in which each container was throttled, and the time "
                "it spent throttled per second.",
                Query(
                    f"max by (container) (increase(kubensage_container_cpu_cfs_throttled_periods_total{raw(*this)}[{RATE}]))"
                    f" / max by (container) (increase(kubensage_container_cpu_cfs_periods_total{raw(*this)}[{RATE}]))",
                    "{{container}} periods throttled",
                ),
                Query(
                    per_container("kubensage_container_cpu_cfs_throttled_seconds_total"),
                    "{{container}} seconds throttled per second",
                ),
                unit="percentunit",
            ),
            timeseries(
                "Memory breakdown",
                "RSS (anonymous memory), page cache and the highest usage the kernel recorded.",
                Query(
                    per_container("kubensage_container_memory_rss_bytes", False),
                    "{{container}} rss",
                ),
                Query(
                    per_container("kubensage_container_memory_cache_bytes", False),
                    "{{container}} cache",
                ),
                Query(
                    per_container("kubensage_container_memory_max_usage_bytes", False),
                    "{{container}} max usage",
                ),
                unit="bytes",
            ),
            timeseries(
                "OOM kills",
                "Processes the OOM killer ended in each container (all its attempts in this pod).",
                Query(per_container("kubensage_container_oom_kills_total", False), "{{container}}"),
            ),
            timeseries(
                "Restarts",
                "Restart attempt number of each container.",
                Query(per_container("kubensage_container_restarts", False), "{{container}}"),
            ),
            timeseries(
                "Network",
                "Bytes per second received and transmitted per interface (pods with their "
                "own network namespace).",
                Query(
                    f"max by (interface) (rate(kubensage_pod_network_receive_bytes_total{raw(*this)}[{RATE}]))",
                    "{{interface}} received",
                ),
                Query(
                    f"max by (interface) (rate(kubensage_pod_network_transmit_bytes_total{raw(*this)}[{RATE}]))",
                    "{{interface}} transmitted",
                ),
                unit="Bps",
            ),
            timeseries(
                "Disk I/O",
                "Bytes per second each container reads and writes, per block device.",
                Query(
                    f"max by (container, device) (rate(kubensage_container_block_read_bytes_total{raw(*this)}[{RATE}]))",
                    "{{container}} {{device}} read",
                ),
                Query(
                    f"max by (container, device) (rate(kubensage_container_block_written_bytes_total{raw(*this)}[{RATE}]))",
                    "{{container}} {{device}} written",
                ),
                unit="Bps",
            ),
        ]
        return dashboard(
            "kubensage-pod",
            "kubensage / Pod",
            "One pod's containers: usage against requests and limits, throttling, memory, "
            "OOM kills, restarts, network, disk I/O.",
            variables,
            panels,
        )


def dashboards(config: Config) -> dict[str, dict[str, Any]]:
    """File name (without .json) to dashboard."""
    boards = Boards(config)
    return {
        "kubensage-fleet": boards.fleet(),
        "kubensage-node": boards.node(),
        "kubensage-workload": boards.workload(),
        "kubensage-pod": boards.pod(),
    }
