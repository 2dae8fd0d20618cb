"""Sender shards: threads that take blocks from a receiver's queue and POST them.

Each shard keeps one keep-alive connection and sends one block at a time, every
request bounded by the receiver's timeout. The remote-write rules: a 2xx is done;
5xx, 429 and connection errors are retried with capped, jittered exponential backoff
(a Retry-After answer sets the wait instead); any other 4xx means the receiver will
never take the block, so it is dropped, counted and the answer logged once. A block
that outlives the queue's max age while being retried is dropped and counted.
Blocks of one node go out one after the other (the queue's turns), so each series
reaches the receiver oldest first even with several shards.
"""

from __future__ import annotations

import email.utils
import http.client
import threading
import time
from dataclasses import dataclass

from kubensage_common.backoff import Backoff
from kubensage_common.logsetup import OnceLogger
from relay.export.metrics import ReceiverMetrics
from relay.export.queue import Block, Queue
from relay.export.receiver import Receiver

ANSWER_EXCERPT_BYTES = 256
MAX_ANSWER_BYTES = 64 * 1024
RETRY_AFTER_LIMIT_SECONDS = 300.0
GET_TIMEOUT_SECONDS = 0.5


@dataclass(frozen=True)
class RetryPolicy:
    min_backoff_seconds: float = 0.03
    max_backoff_seconds: float = 5.0


@dataclass(frozen=True)
class Answer:
    status: int  # 0 for a connection error or timeout
    retry_after: float | None
    text: str

    @property
    def retryable(self) -> bool:
        return self.status in {0, 429} or self.status >= 500

    @property
    def kind(self) -> str:
        if self.status == 0:
            return "error"
        if self.status == 429:
            return "429"
        return f"{self.status // 100}xx"


def parse_retry_after(value: str | None, now: float) -> float | None:
    """Seconds to wait from a Retry-After header (delta seconds or an HTTP date)."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return min(float(value), RETRY_AFTER_LIMIT_SECONDS)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return min(max(when.timestamp() - now, 0.0), RETRY_AFTER_LIMIT_SECONDS)


class Shard(threading.Thread):
    def __init__(
        self,
        name: str,
        *,
        receiver: Receiver,
        queue: Queue,
        metrics: ReceiverMetrics,
        policy: RetryPolicy,
        stopping: threading.Event,
        once: OnceLogger,
    ) -> None:
        super().__init__(name=name, daemon=True)
        self.receiver = receiver
        self.queue = queue
        self.metrics = metrics
        self.policy = policy
        self.stopping = stopping
        self.once = once
        self._connection: http.client.HTTPConnection | None = None

    def run(self) -> None:
        while not self.stopping.is_set():
            block = self.queue.get(GET_TIMEOUT_SECONDS)
            if block is not None:
                self._deliver(block)
        self._close()

    def _deliver(self, block: Block) -> None:
        """Until the block is sent, refused, too old, or the relay stops (it stays queued)."""
        backoff = Backoff(self.policy.min_backoff_seconds, self.policy.max_backoff_seconds)
        url = self.receiver.display
        while not self.queue.wait_turn(block, GET_TIMEOUT_SECONDS):
            if self.stopping.is_set():
                return
        while not self.stopping.is_set():
            if self.queue.expired(block):
                self.metrics.dropped.inc(block.samples)
                self.queue.done(block)
                return
            answer = self._post(block.payload)
            self.metrics.answers[answer.kind].inc()
            if 200 <= answer.status < 300:
                self.metrics.sent.inc(block.samples)
                self.metrics.highest_sent.offer(block.collected_ms)
                self.queue.done(block)
                self.once.clear(f"remote-write:{url}")
                return
            if not answer.retryable:
                self.metrics.failed.inc(block.samples)
                self.queue.done(block)
                self.once.problem(
                    f"remote-write:{url}:{answer.status}",
                    f"remote write to {url} refused {block.samples} samples of node "
                    f"{block.node} with HTTP {answer.status}: {answer.text!r}; dropped",
                )
                return
            self.metrics.retried.inc(block.samples)
            self.once.problem(
                f"remote-write:{url}",
                f"remote write to {url} failed ({answer.kind}: {answer.text!r}); retrying",
            )
            delay = answer.retry_after if answer.retry_after is not None else backoff.next_delay()
            self.stopping.wait(delay)

    def _post(self, payload: bytes) -> Answer:
        try:
            if self._connection is None:
                self._connection = self.receiver.connection()
            connection = self._connection
            connection.request(
                "POST", self.receiver.path, payload, self.receiver.headers(len(payload))
            )
            response = connection.getresponse()
            body = response.read(MAX_ANSWER_BYTES + 1)
            if len(body) > MAX_ANSWER_BYTES or response.will_close:
                self._close()
            text = body[:ANSWER_EXCERPT_BYTES].decode(errors="replace").strip()
            retry_after = parse_retry_after(response.getheader("Retry-After"), time.time())
            return Answer(response.status, retry_after, text)
        except (OSError, http.client.HTTPException) as exc:
            self._close()
            return Answer(0, None, f"{type(exc).__name__}: {exc}"[:ANSWER_EXCERPT_BYTES])

    def _close(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None
