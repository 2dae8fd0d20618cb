"""The relay's own health, in the same registry as the nodes' series."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from relay.state.store import LATE_OUTCOMES, REJECTED_OUTCOMES

REJECT_REASONS = ("invalid", "identity_mismatch", "no_hello", *(o.value for o in REJECTED_OUTCOMES))
AUTH_FAILURES = ("missing", "malformed", "invalid", "wrong_node")
DECODE_ERRORS = (
    *("too_large", "compression_ratio", "bad_compression", "malformed"),
    *("too_many_entries", "unknown_fields", "bad_hello"),
)
STREAM_ENDINGS = ("clean", "lost", "replaced", "revoked", "invalid")
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
            "Agent streams refused or ended for their credentials, by reason.",
            ["reason"],
            registry=registry,
        )
        for reason in AUTH_FAILURES:
            self.auth_failures.labels(reason)
        self.late = Counter(
            "kubensage_relay_reports_late_total",
            "Reports acknowledged but not the node's current state (older than what it "
            "shows, or stale), by reason.",
            ["reason"],
            registry=registry,
        )
        for late in LATE_OUTCOMES:
            self.late.labels(late.value)
        self.decode_errors = Counter(
            "kubensage_relay_decode_errors_total",
            "Agent messages refused before or while decoding (the stream ends with "
            "INVALID_ARGUMENT), by reason.",
            ["reason"],
            registry=registry,
        )
        for reason in DECODE_ERRORS:
            self.decode_errors.labels(reason)
        self.truncations = Counter(
            "kubensage_relay_report_truncations_total",
            "Entries and values cut from reports over the limits, by field (Message.field).",
            ["what"],
            registry=registry,
        )
        self.sequence_resets = Counter(
            "kubensage_relay_sequence_resets_total",
            "Agents that came back with a lower sequence than remembered (lost state): "
            "a new numbering was started.",
            registry=registry,
        )
        self.node_takeovers = Counter(
            "kubensage_relay_node_takeovers_total",
            "A second stream for a node: the older one replaced, or the newcomer refused "
            "because the agent that replaced it still reports.",
            ["outcome"],
            registry=registry,
        )
        for outcome in ("replaced", "refused"):
            self.node_takeovers.labels(outcome)
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
        for how in STREAM_ENDINGS:
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
