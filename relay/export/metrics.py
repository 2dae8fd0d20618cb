"""Remote write's own health, shaped like Prometheus's prometheus_remote_storage_* families."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Gauge

SAMPLE_OUTCOMES = ("sent", "failed", "retried", "dropped")
REPORT_OUTCOMES = ("written", "duplicate", "out_of_order", "error")
ANSWERS = ("2xx", "429", "4xx", "5xx", "error")
# shown in docs/metrics.md so the url label is listed; never a real receiver
EXAMPLE_URL = "https://receiver.example/api/v1/write"


class Highest:
    """The largest value offered by any shard of a receiver."""

    def __init__(self) -> None:
        self.value = 0
        self._lock = threading.Lock()

    def offer(self, value: int) -> None:
        with self._lock:
            self.value = max(self.value, value)


@dataclass(frozen=True)
class ReceiverMetrics:
    """The children of one receiver, so the hot path does not look labels up."""

    sent: Counter
    failed: Counter
    retried: Counter
    dropped: Counter
    answers: dict[str, Counter]
    corrupt: Counter
    highest_sent: Highest  # collection time in milliseconds


class RemoteWriteMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.samples = Counter(
            "kubensage_relay_remote_write_samples_total",
            "Samples by what became of them: sent (the receiver took them), failed "
            "(refused with a 4xx other than 429: dropped), retried (one count per failed "
            "attempt that is retried) and dropped (older than the queue's max age).",
            ["url", "outcome"],
            registry=registry,
        )
        self.reports = Counter(
            "kubensage_relay_remote_write_reports_total",
            "Reports by what remote write did with them: written, or dropped because "
            "their node already has samples at (duplicate) or after (out_of_order) "
            "their collection time, or because they could not be encoded (error).",
            ["outcome"],
            registry=registry,
        )
        for outcome in REPORT_OUTCOMES:
            self.reports.labels(outcome)
        self.answers = Counter(
            "kubensage_relay_remote_write_requests_total",
            "Requests to a receiver by its answer (status class, 429, or a connection error).",
            ["url", "answer"],
            registry=registry,
        )
        self.queue_samples = Gauge(
            "kubensage_relay_remote_write_queue_samples",
            "Samples waiting for a receiver (in flight included).",
            ["url"],
            registry=registry,
        )
        self.queue_bytes = Gauge(
            "kubensage_relay_remote_write_queue_bytes",
            "Compressed bytes waiting for a receiver (in flight included).",
            ["url"],
            registry=registry,
        )
        self.queue_max_bytes = Gauge(
            "kubensage_relay_remote_write_queue_max_bytes",
            "The bound of a receiver's queue; when reached, reports wait before their ack.",
            ["url"],
            registry=registry,
        )
        self.corrupt = Counter(
            "kubensage_relay_remote_write_queue_corrupt_records_total",
            "Records of a disk queue that could not be read back and were skipped.",
            ["url"],
            registry=registry,
        )
        self.highest_sent = Gauge(
            "kubensage_relay_remote_write_highest_sent_timestamp_seconds",
            "Collection time of the newest sample a receiver took.",
            ["url"],
            registry=registry,
        )
        self.backpressure_waits = Counter(
            "kubensage_relay_remote_write_backpressure_waits_total",
            "Reports whose acknowledgement waited for room in a full queue (agents spool "
            "meanwhile).",
            registry=registry,
        )
        self.backpressure_seconds = Counter(
            "kubensage_relay_remote_write_backpressure_seconds_total",
            "Time ingest streams spent waiting for room in a full queue.",
            registry=registry,
        )

    def receiver(
        self,
        url: str,
        queue_samples: Callable[[], float],
        queue_bytes: Callable[[], float],
        max_bytes: int,
    ) -> ReceiverMetrics:
        self.queue_samples.labels(url).set_function(queue_samples)
        self.queue_bytes.labels(url).set_function(queue_bytes)
        self.queue_max_bytes.labels(url).set(max_bytes)
        highest = Highest()
        self.highest_sent.labels(url).set_function(lambda: highest.value / 1000)
        return ReceiverMetrics(
            sent=self.samples.labels(url, "sent"),
            failed=self.samples.labels(url, "failed"),
            retried=self.samples.labels(url, "retried"),
            dropped=self.samples.labels(url, "dropped"),
            answers={answer: self.answers.labels(url, answer) for answer in ANSWERS},
            corrupt=self.corrupt.labels(url),
            highest_sent=highest,
        )
