"""Hostile clients for the relay, and a well-behaved agent to watch while they attack.

`wire` helpers make protobuf bytes no well-behaved encoder makes; `attack` sends raw
bytes over real gRPC and says how the relay answered; `GoodAgent` runs the agent's own
push code in a thread against the relay and counts its acknowledgements.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import grpc

from kubensage_agent.push.queue import ReportQueue
from kubensage_agent.push.stream import StreamSender
from kubensage_agent.wire.tls import ClientTls
from kubensage_api.telemetry import telemetry_pb2 as tm
from kubensage_lab.processes import http_get
from tests.support.reports import full_report

STREAM = "/kubensage.telemetry.v1.Ingest/Stream"
METRICS_PODS = 7  # Metrics.pods
WIRE_LENGTH = 2


def channel_credentials(ca_file: str, cert_file: str, key_file: str) -> grpc.ChannelCredentials:
    """grpcio's TLS credentials: the hostile clients speak grpcio, not the agent's client."""
    return grpc.ssl_channel_credentials(
        root_certificates=Path(ca_file).read_bytes(),
        private_key=Path(key_file).read_bytes(),
        certificate_chain=Path(cert_file).read_bytes(),
    )


# -- wire bytes ---------------------------------------------------------------------------


def varint(value: int) -> bytes:
    out = bytearray()
    while True:
        low, value = value & 0x7F, value >> 7
        if value:
            out.append(low | 0x80)
        else:
            out.append(low)
            return bytes(out)


def field_bytes(number: int, payload: bytes) -> bytes:
    """One length-delimited field."""
    return varint(number << 3 | WIRE_LENGTH) + varint(len(payload)) + payload


def repeated_empty_pods(count: int) -> bytes:
    """`count` empty entries of Metrics.pods: two bytes each on the wire."""
    return field_bytes(METRICS_PODS, b"") * count


def hello_bytes(node: str, agent_id: str, last_sequence: int = 0) -> bytes:
    hello = tm.Hello(agent_id=agent_id, node_name=node, last_sequence=last_sequence)
    return tm.AgentMessage(hello=hello).SerializeToString()


def report_bytes(report: tm.Metrics) -> bytes:
    return tm.AgentMessage(report=report).SerializeToString()


def report_envelope(metrics_payload: bytes) -> bytes:
    """An AgentMessage whose report is `metrics_payload` (raw Metrics bytes)."""
    return field_bytes(2, metrics_payload)


# -- an attacker ---------------------------------------------------------------------------


@dataclass
class Answer:
    code: grpc.StatusCode
    details: str
    acks: list[int] = field(default_factory=list)


def attack(
    address: str,
    messages: Iterable[bytes],
    *,
    gzip: bool = False,
    token: str | None = None,
    credentials: grpc.ChannelCredentials | None = None,
    server_name: str | None = None,
    timeout: float = 60.0,
    hold_open: float = 0.0,
) -> Answer:
    """Send raw messages on one stream; how the relay answered. The stream is cancelled
    once every report is acknowledged, as a lost connection would be (a half-close is a
    clean close, which takes the node off the relay at once). With `hold_open`, the stream
    stays open that long after the last message instead (for revocation)."""
    options = [("grpc.max_send_message_length", 64 << 20)]
    if server_name:
        options.append(("grpc.ssl_target_name_override", server_name))
    compression = grpc.Compression.Gzip if gzip else grpc.Compression.NoCompression
    channel = (
        grpc.secure_channel(address, credentials, options=options, compression=compression)
        if credentials is not None
        else grpc.insecure_channel(address, options=options, compression=compression)
    )
    metadata = (("authorization", f"Bearer {token}"),) if token else ()
    sent = list(messages)
    reports = max(len(sent) - 1, 0)  # all but the hello
    acknowledged = threading.Event()

    def requests() -> Iterable[bytes]:
        yield from sent
        acknowledged.wait(hold_open if hold_open else timeout)

    answer = Answer(grpc.StatusCode.OK, "")
    with channel:
        call = channel.stream_stream(STREAM, request_serializer=None, response_deserializer=None)
        responses = call(requests(), timeout=timeout, metadata=metadata)
        try:
            for raw in responses:
                message = tm.RelayMessage.FromString(raw)
                if message.HasField("ack"):
                    answer.acks.append(message.ack.sequence)
                if not hold_open and len(answer.acks) >= reports:
                    acknowledged.set()
                    responses.cancel()
        except grpc.RpcError as exc:
            if not (acknowledged.is_set() and exc.code() == grpc.StatusCode.CANCELLED):
                answer.code, answer.details = exc.code(), str(exc.details())
        finally:
            acknowledged.set()
    return answer


# -- a well-behaved agent -------------------------------------------------------------------


class GoodAgent:
    """The agent's push code in a thread: one report of a 20-container node every
    `interval` seconds, its CPU counter (`counter_base` + reports made) rising by one
    per report."""

    def __init__(
        self,
        address: str,
        node: str = "good-node",
        *,
        agent_id: str = "",
        counter_base: float = 1000.0,
        interval: float = 0.3,
        token_file: Path | None = None,
        tls: ClientTls | None = None,
    ) -> None:
        self.address = address
        self.node = node
        self.interval = interval
        self.agent_id = agent_id or f"agent-of-{node}"
        self.counter_base = counter_base
        self.token_file = token_file
        self.tls = tls
        self.produced = 0
        self.sender: StreamSender | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=lambda: asyncio.run(self._run()), daemon=True)

    @property
    def acked(self) -> int:
        return self.sender.highest_acked if self.sender is not None else 0

    def start(self) -> GoodAgent:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=30)

    def __enter__(self) -> GoodAgent:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    async def _run(self) -> None:
        queue = ReportQueue(capacity=1000)
        self.sender = StreamSender(
            self.address,
            lambda: tm.Hello(
                agent_id=self.agent_id, node_name=self.node, last_sequence=self.produced
            ),
            queue,
            lambda settings: None,
            4 << 20,
            tls=self.tls,
            token_file=self.token_file,
        )
        sending = asyncio.create_task(self.sender.run())
        template = full_report(node=self.node, containers=20, agent_id=self.agent_id)
        while not self._stop.is_set():
            self.produced += 1
            report = tm.Metrics()
            report.CopyFrom(template)
            report.sequence = self.produced
            report.collected_at_unix_nanos = time.time_ns()
            report.node.cpu_seconds_by_mode["user"] = self.counter_base + self.produced
            queue.put(report)
            await asyncio.sleep(self.interval)
        await self.sender.flush_and_close(1.0)
        sending.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await sending

    def wait_for_acks(self, more: int, timeout: float = 60.0) -> int:
        """Block until `more` further reports are acknowledged; the new total."""
        target = self.acked + more
        deadline = time.monotonic() + timeout
        while self.acked < target:
            if time.monotonic() > deadline:
                raise AssertionError(f"{self.node}: only {self.acked} of {target} acknowledged")
            time.sleep(0.05)
        return self.acked


# -- the relay seen from outside -----------------------------------------------------------


def scrape(metrics_url: str) -> str:
    status, body = http_get(metrics_url, timeout=30)
    assert status == 200, body[:200]
    return body


def node_lines(exposition: str, node: str) -> list[str]:
    needle = f'node="{node}"'
    return [line for line in exposition.splitlines() if needle in line and not line.startswith("#")]


def sample(exposition: str, name: str, labels: Sequence[str]) -> float | None:
    """The value of the first sample of `name` whose line holds every label in `labels`."""
    for line in exposition.splitlines():
        if line.startswith((name + "{", name + " ")) and all(label in line for label in labels):
            return float(line.rsplit(" ", 1)[1])
    return None
