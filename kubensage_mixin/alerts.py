"""Alerts on kubensage's native names: its own health first (agents, relays, remote
write, check scripts), then what it sees on nodes and containers.

Thresholds and `for` durations follow the node-mixin (filesystems) and the
kubernetes-mixin (CPU throttling); node- and container-level expressions take the
`max` over relay replicas, which can both hold a node while its stream moves.
Every alert carries `summary`, `description` and a `runbook_url` anchored at its
section of docs/runbook.md.
"""

from __future__ import annotations

from kubensage_mixin.config import Config
from kubensage_mixin.model import Alert, Group, promql

CONTAINER_LABELS = ("node", "namespace", "pod", "container", "workload", "workload_kind")
FILESYSTEM_LABELS = ("node", "device", "fstype", "mountpoint")


class Alerts:
    """Builds each alert from the config so selectors and runbook links stay in one place."""

    def __init__(self, config: Config) -> None:
        self.config = config

    def by(self, *names: str) -> str:
        return ", ".join((self.config.cluster_label, *names))

    def sel(self, *matchers: str) -> str:
        return self.config.selector(*matchers)

    def alert(self, name: str, expr: str, for_: str, severity: str, *text: str) -> Alert:
        """`text`: the summary, then the description."""
        summary, description = text
        return Alert(
            name, promql(expr), for_, severity, summary, description, self.config.runbook(name)
        )

    def agents(self) -> Group:
        node, sel = self.by("node"), self.sel()
        nodes_selector = self.sel('resource="nodes"')
        nodes_known = f"max by ({self.by()}) (kubensage_relay_kube_objects{nodes_selector})"
        lookback = self.config.vanished_node_lookback
        return Group(
            "kubensage-agents",
            (
                self.alert(
                    "KubensageAgentNotReporting",
                    f"""
                    (
                      time() - max by ({node}) (kubensage_relay_last_report_timestamp_seconds{sel})
                      > 3 * max by ({node}) (kubensage_agent_interval_seconds{sel})
                    )
                    or
                    (
                      max by ({node}) (max_over_time(kubensage_relay_last_report_timestamp_seconds{sel}[{lookback}]))
                      unless on ({node})
                      kubensage_relay_last_report_timestamp_seconds{sel}
                    )
                    """,
                    "5m",
                    "warning",
                    "A kubensage agent stopped reporting.",
                    "No report from the agent of node {{ $labels.node }} for more than three "
                    "collection intervals, or the node left every relay in the last "
                    f"{lookback}: its pods and containers have no figures.",
                ),
                self.alert(
                    "KubensageAgentsMissing",
                    f"""
                    {nodes_known}
                    -
                    (
                      count by ({self.by()}) (max by ({node}) (kubensage_relay_node_connected{sel}) == 1)
                      or
                      {nodes_known} * 0
                    )
                    > 0
                    """,
                    "15m",
                    "warning",
                    "Nodes without a connected kubensage agent.",
                    "{{ $value }} of the nodes Kubernetes lists have no agent connected to "
                    "any relay: their agents never connected or stay disconnected.",
                ),
                self.alert(
                    "KubensageAgentReportsDropped",
                    f"max by ({node}) (increase(kubensage_agent_dropped_reports_total{sel}[15m])) > 0",
                    "0m",
                    "warning",
                    "A kubensage agent dropped reports.",
                    "The agent of node {{ $labels.node }} dropped {{ $value | humanize }} "
                    "reports in 15 minutes because its queue or spool was full: that node's "
                    "figures have gaps.",
                ),
                self.alert(
                    "KubensageAgentSpoolGrowing",
                    f"""
                    max by ({node}) (kubensage_agent_spooled_bytes{sel}) > 0
                    and
                    max by ({node}) (delta(kubensage_agent_spooled_bytes{sel}[15m])) > 0
                    """,
                    "15m",
                    "warning",
                    "A kubensage agent's spool keeps growing.",
                    "The agent of node {{ $labels.node }} holds {{ $value | humanize1024 }}B "
                    "of unacknowledged reports and the spool grew over the last 15 minutes: "
                    "its relay does not take reports as fast as they come.",
                ),
                self.alert(
                    "KubensageAgentCRIErrors",
                    f"max by ({node}) (rate(kubensage_agent_cri_errors_total{sel}[5m])) > 0",
                    "15m",
                    "warning",
                    "A kubensage agent's calls to the container runtime keep failing.",
                    "CRI calls of the agent on node {{ $labels.node }} have failed for 15 "
                    'minutes ({{ printf "%.2f" $value }}/s): pod and container figures of that '
                    "node are partial or missing.",
                ),
                self.alert(
                    "KubensageAgentCollectorErrors",
                    f"max by ({self.by('node', 'collector')}) "
                    f"(rate(kubensage_agent_collector_errors_total{sel}[5m])) > 0",
                    "15m",
                    "warning",
                    "A kubensage collector keeps failing.",
                    "Collector {{ $labels.collector }} of the agent on node {{ $labels.node }} "
                    "has failed for 15 minutes: the figures it reads are missing.",
                ),
            ),
        )

    def relays(self) -> Group:
        sel = self.sel()
        relay = self.by("instance")
        receiver = self.by("instance", "url")
        samples = "kubensage_relay_remote_write_samples_total"
        return Group(
            "kubensage-relay",
            (
                self.alert(
                    "KubensageRelayDown",
                    f"up{sel} == 0",
                    "5m",
                    "critical",
                    "A kubensage relay cannot be scraped.",
                    "Prometheus has not scraped relay {{ $labels.instance }} for 5 minutes: "
                    "the nodes whose agents it holds have no figures.",
                ),
                self.alert(
                    "KubensageRelayNoAgents",
                    f"sum by ({self.by()}) (kubensage_relay_connected_agents{sel}) == 0",
                    "15m",
                    "warning",
                    "No kubensage agent is connected to any relay.",
                    "Not one agent has held a stream to a relay for 15 minutes: agents are "
                    "not running, cannot reach the relays or are refused.",
                ),
                self.alert(
                    "KubensageRelayRejectingReports",
                    f"""
                    sum by ({self.by("instance", "reason")}) (rate(kubensage_relay_reports_rejected_total{sel}[5m])) > 0
                    or
                    sum by ({self.by("instance", "reason")}) (rate(kubensage_relay_decode_errors_total{sel}[5m])) > 0
                    """,
                    "10m",
                    "warning",
                    "A kubensage relay refuses reports.",
                    "Relay {{ $labels.instance }} has refused reports for 10 minutes "
                    '(reason {{ $labels.reason }}, {{ printf "%.2f" $value }}/s): those reports '
                    "are not served nor written.",
                ),
                self.alert(
                    "KubensageRelayAuthFailures",
                    f"sum by ({self.by('instance', 'reason')}) "
                    f"(rate(kubensage_relay_auth_failures_total{sel}[5m])) > 0",
                    "15m",
                    "warning",
                    "A kubensage relay refuses agents' credentials.",
                    "Relay {{ $labels.instance }} has refused agent credentials for 15 "
                    "minutes (reason {{ $labels.reason }}): those agents cannot report.",
                ),
                self.alert(
                    "KubensageRelayRemoteWriteFailing",
                    f"""
                    sum by ({receiver}) (rate({samples}{self.sel('outcome=~"failed|dropped"')}[5m]))
                    /
                    sum by ({receiver}) (rate({samples}{self.sel('outcome=~"sent|failed|dropped"')}[5m]))
                    > 0.01
                    """,
                    "15m",
                    "critical",
                    "A kubensage relay loses samples on remote write.",
                    "Relay {{ $labels.instance }} has lost {{ $value | humanizePercentage }} "
                    "of its samples for {{ $labels.url }} (refused or too old) for 15 minutes.",
                ),
                self.alert(
                    "KubensageRelayRemoteWriteBehind",
                    f"""
                    (
                      time() - max by ({receiver}) (kubensage_relay_remote_write_highest_sent_timestamp_seconds{sel})
                      > 120
                    )
                    and on ({receiver})
                    max by ({receiver}) (kubensage_relay_remote_write_queue_samples{sel}) > 0
                    """,
                    "15m",
                    "warning",
                    "A kubensage relay's remote write lags.",
                    "The newest sample {{ $labels.url }} took from relay "
                    "{{ $labels.instance }} is {{ $value | humanizeDuration }} old while "
                    "samples wait in its queue.",
                ),
                self.alert(
                    "KubensageRelayRemoteWriteQueueFull",
                    f"""
                    max by ({receiver}) (kubensage_relay_remote_write_queue_bytes{sel})
                    / on ({receiver})
                    max by ({receiver}) (kubensage_relay_remote_write_queue_max_bytes{sel})
                    > 0.8
                    or
                    sum by ({relay}) (rate(kubensage_relay_remote_write_backpressure_waits_total{sel}[5m])) > 0
                    """,
                    "5m",
                    "warning",
                    "A kubensage relay's remote-write queue is full.",
                    "The remote-write queue of relay {{ $labels.instance }} is over 80% "
                    "full or makes agents wait: agents spool meanwhile and drop reports "
                    "when their spool fills.",
                ),
            ),
        )

    def checks(self) -> Group:
        critical = self.sel('state="critical"')
        return Group(
            "kubensage-checks",
            (
                self.alert(
                    "KubensageNodeCheckCritical",
                    f"max by ({self.by('node', 'check')}) (kubensage_check_status{critical}) == 1",
                    "5m",
                    "warning",
                    "A node check script reports critical.",
                    "Check {{ $labels.check }} on node {{ $labels.node }} has been critical "
                    "for 5 minutes; its output is on the relay's fleet page.",
                ),
            ),
        )

    def filesystem(self, name: str, matchers: str = "") -> str:
        fs = self.by(*FILESYSTEM_LABELS)
        selector = self.sel(self.config.filesystem_selector, matchers)
        return f"max by ({fs}) (kubensage_node_filesystem_{name}{selector})"

    def space_filling_up(self, severity: str, percent: int, hours: int) -> Alert:
        fs = self.by(*FILESYSTEM_LABELS)
        selector = self.sel(self.config.filesystem_selector)
        available = f"kubensage_node_filesystem_available_bytes{selector}"
        return self.alert(
            "KubensageNodeFilesystemSpaceFillingUp",
            f"""
            {self.filesystem("available_bytes")} / {self.filesystem("size_bytes")} * 100 < {percent}
            and
            max by ({fs}) (predict_linear({available}[6h], {hours} * 60 * 60)) < 0
            and
            {self.filesystem("read_only")} == 0
            """,
            "1h",
            severity,
            f"A node filesystem is predicted to fill up within {hours} hours.",
            "Filesystem {{ $labels.mountpoint }} ({{ $labels.device }}) on node "
            '{{ $labels.node }} has {{ printf "%.1f" $value }}% space left and fills up '
            f"within {hours} hours at the rate of the last 6 hours.",
        )

    def out_of_files(self, severity: str, percent: int) -> Alert:
        return self.alert(
            "KubensageNodeFilesystemAlmostOutOfFiles",
            f"""
            {self.filesystem("files_free")} / {self.filesystem("files")} * 100 < {percent}
            and
            {self.filesystem("read_only")} == 0
            """,
            "1h",
            severity,
            "A node filesystem is almost out of inodes.",
            "Filesystem {{ $labels.mountpoint }} ({{ $labels.device }}) on node "
            '{{ $labels.node }} has {{ printf "%.1f" $value }}% of its inodes left.',
        )

    def nodes(self) -> Group:
        fs = self.by(*FILESYSTEM_LABELS)
        read_only = (
            f"kubensage_node_filesystem_read_only{self.sel(self.config.filesystem_selector)}"
        )
        return Group(
            "kubensage-node",
            (
                self.space_filling_up("warning", 40, 24),
                self.space_filling_up("critical", 20, 4),
                self.out_of_files("warning", 5),
                self.out_of_files("critical", 3),
                self.alert(
                    "KubensageNodeFilesystemReadOnly",
                    f"""
                    {self.filesystem("read_only")} == 1
                    and
                    max by ({fs}) (min_over_time({read_only}[1d])) == 0
                    """,
                    "1m",
                    "critical",
                    "A node filesystem became read-only.",
                    "Filesystem {{ $labels.mountpoint }} ({{ $labels.device }}) on node "
                    "{{ $labels.node }} was writable in the last day and is read-only now "
                    "(the kernel remounts a filesystem read-only after I/O errors).",
                ),
            ),
        )

    def containers(self) -> Group:
        cc, sel = self.by(*CONTAINER_LABELS), self.sel()
        where = (
            "Container {{ $labels.container }} of pod {{ $labels.namespace }}/{{ $labels.pod }} "
            "on node {{ $labels.node }}"
        )
        throttling = self.config.cpu_throttling_percent
        near = self.config.memory_near_limit_ratio
        return Group(
            "kubensage-containers",
            (
                self.alert(
                    "KubensageContainerOOMKilled",
                    f"max by ({cc}) (increase(kubensage_container_oom_kills_total{sel}[10m])) > 0",
                    "0m",
                    "warning",
                    "A container was OOM-killed.",
                    f"{where} saw {{{{ $value | humanize }}}} OOM kills "
                    "in the last 10 minutes: it needs more memory than its limit.",
                ),
                self.alert(
                    "KubensageContainerCPUThrottlingHigh",
                    f"""
                    max by ({cc}) (increase(kubensage_container_cpu_cfs_throttled_periods_total{sel}[5m]))
                    / on ({cc})
                    max by ({cc}) (increase(kubensage_container_cpu_cfs_periods_total{sel}[5m]))
                    > {throttling / 100:g}
                    """,
                    "15m",
                    "info",
                    "A container is throttled by its CPU limit.",
                    f"{where} was throttled in {{{{ $value | humanizePercentage }}}} of its "
                    "CPU periods over 5 minutes.",
                ),
                self.alert(
                    "KubensageContainerMemoryNearLimit",
                    f"""
                    max by ({cc}) (kubensage_container_memory_working_set_bytes{sel})
                    / on ({cc})
                    max by ({cc}) (kubensage_container_resource_limits{self.sel('resource="memory"')} > 0)
                    > {near:g}
                    """,
                    "15m",
                    "warning",
                    "A container's memory is near its limit.",
                    f"{where} uses {{{{ $value | humanizePercentage }}}} of its memory "
                    "limit: the next growth gets it OOM-killed.",
                ),
                self.alert(
                    "KubensageContainerRestarting",
                    f"max by ({cc}) (increase(kubensage_container_restarts{sel}[15m])) > 0",
                    "15m",
                    "warning",
                    "A container keeps restarting.",
                    f"{where} has restarted in every 15 minutes for the last 15 minutes "
                    "({{ $value | humanize }} restarts in the last window).",
                ),
            ),
        )


def alert_groups(config: Config) -> tuple[Group, ...]:
    alerts = Alerts(config)
    return (alerts.agents(), alerts.relays(), alerts.checks(), alerts.nodes(), alerts.containers())
