"""The relay's own health, in the same registry as the nodes' series."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

REJECT_REASONS = ("duplicate", "outdated", "invalid", "identity_mismatch", "no_hello")
AUTH_FAILURES = ("missing", "malformed", "invalid")
TRUNCATIONS = ("pods", "containers", "labels", "label_values", "interfaces")
DURATION_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0)
AGE_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300)


class RelayMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.received = Counter(
            "kubensage_relay_reports_received_total",
            "Reports accepted into the node state.",
            registry=registry,
        )
        self.rejected = Counter(
            "kubensage_relay_reports_rejected_total",
            "Reports acknowledged but not stored, by reason.",
            ["reason"],
            registry=registry,
        )
        for reason in REJECT_REASONS:
            self.rejected.labels(reason)
        self.auth_failures = Counter(
            "kubensage_relay_auth_failures_total",
            "Agent streams refused for their bearer token, by reason.",
            ["reason"],
            registry=registry,
        )
        for reason in AUTH_FAILURES:
            self.auth_failures.labels(reason)
        self.truncations = Counter(
            "kubensage_relay_report_truncations_total",
            "Cuts made to reports over the per-report limits, by what was cut.",
            ["what"],
            registry=registry,
        )
        for what in TRUNCATIONS:
            self.truncations.labels(what)
        self.exposition_errors = Counter(
            "kubensage_relay_exposition_errors_total",
            "Nodes left out of a scrape because their report could not be exposed.",
            registry=registry,
        )
        self.connected_agents = Gauge(
            "kubensage_relay_connected_agents",
            "Agent streams open on this relay.",
            registry=registry,
        )
        self.streams_closed = Counter(
            "kubensage_relay_streams_closed_total",
            "Agent streams that ended, by how they ended.",
            ["how"],
            registry=registry,
        )
        for how in ("clean", "lost"):
            self.streams_closed.labels(how)
        self.streams_rotated = Counter(
            "kubensage_relay_streams_rotated_total",
            "Agent streams this relay ended cleanly at their max age, so agents reconnect "
            "(through the load balancer) and spread over every replica.",
            registry=registry,
        )
        self.ingest_duration = Histogram(
            "kubensage_relay_ingest_duration_seconds",
            "Time to validate and store one report.",
            buckets=DURATION_BUCKETS,
            registry=registry,
        )
        self.report_age = Histogram(
            "kubensage_relay_report_age_seconds",
            "Delay from collection on the node to acceptance here (clock skew included).",
            buckets=AGE_BUCKETS,
            registry=registry,
        )
