"""Remote write against a receiver that answers as scripted: headers, retries, drops, order.

The exporter runs for real (queues, sender shards, HTTP); only the receiver's answers
are chosen by the test. Real VictoriaMetrics and Prometheus receivers are in
tests/integration/test_remote_write.py.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import ssl
import struct
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from kubensage_api.telemetry import telemetry_pb2 as tm
from kubensage_lab.processes import eventually, free_port
from relay.enrich.kube import NoEnrichment
from relay.export.exporter import ExportConfig, Exporter
from relay.export.metrics import RemoteWriteMetrics
from relay.export.receiver import Receiver
from relay.export.sender import RetryPolicy, parse_retry_after
from relay.series.profiles import parse_profiles
from tests.support.pki import CertificateAuthority
from tests.support.receiver import Script, ScriptedReceiver
from tests.support.reports import container, pod, report

T0_MS = 1_760_000_000_000


def at(ms: int, node: str = "node-a", sequence: int = 1) -> tm.Metrics:
    out = report(node=node, sequence=sequence)
    out.collected_at_unix_nanos = ms * 1_000_000
    return out


class Harness:
    def __init__(self, config: ExportConfig) -> None:
        self.registry = CollectorRegistry()
        self.exporter = Exporter(
            config, parse_profiles("native"), NoEnrichment(), RemoteWriteMetrics(self.registry)
        )
        self.url = config.receivers[0].display

    def value(self, name: str, **labels: str) -> float:
        return self.registry.get_sample_value(name, labels) or 0.0

    def samples(self, outcome: str) -> float:
        return self.value(
            "kubensage_relay_remote_write_samples_total", url=self.url, outcome=outcome
        )

    def reports(self, outcome: str) -> float:
        return self.value("kubensage_relay_remote_write_reports_total", outcome=outcome)


@pytest.fixture
def receiver() -> Iterator[ScriptedReceiver]:
    with ScriptedReceiver() as server:
        yield server


@contextlib.contextmanager
def running(url: str, **overrides: object) -> Iterator[Harness]:
    receiver_fields = {k: v for k, v in overrides.items() if k in Receiver.__dataclass_fields__}
    config_fields = {"retry": RetryPolicy(0.01, 0.2), "shards": 2}
    config_fields.update({k: v for k, v in overrides.items() if k not in receiver_fields})
    config = ExportConfig(
        receivers=(Receiver(url, timeout_seconds=5, **receiver_fields),),  # type: ignore[arg-type]
        **config_fields,  # type: ignore[arg-type]
    )
    config.validate()
    h = Harness(config)
    h.exporter.start()
    try:
        yield h
    finally:
        h.exporter.stop(drain_seconds=0)


@pytest.fixture
def exporter(receiver: ScriptedReceiver) -> Iterator[Harness]:
    with running(receiver.url) as h:
        yield h


def test_a_report_arrives_with_the_protocol_headers_at_its_collection_time(
    receiver: ScriptedReceiver, exporter: Harness
) -> None:
    exporter.exporter.submit(at(T0_MS))
    eventually(lambda: exporter.samples("sent") > 0, timeout=20)
    (request,) = receiver.received
    assert request.headers["Content-Encoding"] == "snappy"
    assert request.headers["Content-Type"] == "application/x-protobuf"
    assert request.headers["X-Prometheus-Remote-Write-Version"] == "0.1.0"
    assert request.headers["User-Agent"].startswith("kubensage-relay/")
    assert "Authorization" not in request.headers
    series = receiver.taken()
    assert len(series) == exporter.samples("sent")
    assert {s.samples[0].timestamp for s in series} == {T0_MS}
    assert exporter.value(
        "kubensage_relay_remote_write_highest_sent_timestamp_seconds", url=exporter.url
    ) == pytest.approx(T0_MS / 1000)
    assert exporter.value("kubensage_relay_remote_write_queue_samples", url=exporter.url) == 0


def test_500_is_retried_with_the_same_body_until_taken(
    receiver: ScriptedReceiver, exporter: Harness
) -> None:
    receiver.answer(Script(500, body=b"try later"), Script(503))
    exporter.exporter.submit(at(T0_MS))
    eventually(lambda: exporter.samples("sent") > 0, timeout=20)
    statuses = [r.status for r in receiver.received]
    assert statuses == [500, 503, 204]
    bodies = {r.request.SerializeToString() for r in receiver.received if r.request}
    assert len(bodies) == 1
    sent = exporter.samples("sent")
    assert exporter.samples("retried") == 2 * sent
    assert exporter.samples("failed") == 0
    answers = "kubensage_relay_remote_write_requests_total"
    assert exporter.value(answers, url=exporter.url, answer="5xx") == 2
    assert exporter.value(answers, url=exporter.url, answer="2xx") == 1


def test_429_waits_as_long_as_retry_after_says(
    receiver: ScriptedReceiver, exporter: Harness
) -> None:
    receiver.answer(Script(429, headers=(("Retry-After", "2"),)))
    exporter.exporter.submit(at(T0_MS))
    eventually(lambda: exporter.samples("sent") > 0, timeout=20)
    first, second = receiver.received
    assert (first.status, second.status) == (429, 204)
    # the policy's own backoff is at most 0.2 s here: the pause is the receiver's
    assert second.at - first.at >= 1.9
    assert exporter.samples("retried") == exporter.samples("sent")
    answers = "kubensage_relay_remote_write_requests_total"
    assert exporter.value(answers, url=exporter.url, answer="429") == 1


def test_400_drops_the_block_counts_it_and_names_the_answer(
    receiver: ScriptedReceiver, exporter: Harness
) -> None:
    receiver.answer(Script(400, body=b"out of bounds: sample too old"))
    exporter.exporter.submit(at(T0_MS))
    eventually(lambda: exporter.samples("failed") > 0, timeout=20)
    exporter.exporter.submit(at(T0_MS + 1000))
    eventually(lambda: exporter.samples("sent") > 0, timeout=20)
    assert exporter.samples("failed") == exporter.samples("sent")
    assert exporter.samples("retried") == 0
    assert [r.status for r in receiver.received] == [400, 204]
    (message,) = [m for m in exporter.exporter.once.active().values() if "HTTP 400" in m]
    assert "out of bounds: sample too old" in message


def test_reports_that_do_not_move_their_node_forward_are_dropped_and_counted(
    receiver: ScriptedReceiver, exporter: Harness
) -> None:
    export = exporter.exporter
    export.submit(at(T0_MS + 2000))
    export.submit(at(T0_MS + 1000))  # out of order
    export.submit(at(T0_MS + 2000))  # duplicate
    export.submit(at(T0_MS + 1000, node="node-b"))  # other nodes have their own order
    eventually(lambda: len(receiver.received) == 2, timeout=20)
    assert exporter.reports("written") == 2
    assert exporter.reports("out_of_order") == 1
    assert exporter.reports("duplicate") == 1


def test_a_backlog_arrives_oldest_first_per_series_after_the_receiver_comes_up() -> None:
    port = free_port()
    with running(f"http://127.0.0.1:{port}/api/v1/write", shards=4) as h:
        for second in range(12):  # two nodes' backlogs, interleaved as agents resend them
            for node in ("node-a", "node-b"):
                h.exporter.submit(at(T0_MS + second * 1000, node=node))
        eventually(lambda: h.samples("retried") > 0, timeout=20)
        assert h.samples("sent") == 0
        queued = h.value("kubensage_relay_remote_write_queue_samples", url=h.url)
        assert queued > 0
        with ScriptedReceiver(port=port) as late:
            eventually(lambda: h.samples("sent") == queued, timeout=60)
            series = late.taken()
        answers = "kubensage_relay_remote_write_requests_total"
        assert h.value(answers, url=h.url, answer="error") >= 1
    times: dict[tuple[tuple[str, str], ...], list[int]] = {}
    for one in series:
        key = tuple((label.name, label.value) for label in one.labels)
        times.setdefault(key, []).extend(sample.timestamp for sample in one.samples)
    assert times and all(t == sorted(t) and len(t) == 12 for t in times.values())


def test_full_queue_holds_acknowledgements_until_there_is_room(
    receiver: ScriptedReceiver,
) -> None:
    receiver.always(Script(500))
    with running(receiver.url, queue_max_bytes=1, max_room_wait_seconds=0.3) as h:

        async def room() -> bool:
            return await h.exporter.wait_for_room()

        assert asyncio.run(room())
        h.exporter.submit(at(T0_MS))
        assert not asyncio.run(room())  # still full after the bounded wait
        assert h.value("kubensage_relay_remote_write_backpressure_waits_total") == 1
        assert h.value("kubensage_relay_remote_write_backpressure_seconds_total") > 0
        receiver.always(Script(204))
        assert asyncio.run(room()) or asyncio.run(room())
        eventually(lambda: h.samples("sent") > 0, timeout=20)


def test_queued_blocks_older_than_the_max_age_are_dropped(receiver: ScriptedReceiver) -> None:
    receiver.always(Script(503))
    with running(receiver.url, queue_max_age_seconds=1.0) as h:
        h.exporter.submit(at(T0_MS))
        eventually(lambda: h.samples("dropped") > 0, timeout=20)
        assert h.samples("sent") == 0
        assert h.value("kubensage_relay_remote_write_queue_samples", url=h.url) == 0


def test_bearer_token_file_is_read_at_every_request(
    receiver: ScriptedReceiver, tmp_path: Path
) -> None:
    token = tmp_path / "token"
    token.write_text("first\n")
    with running(receiver.url, bearer_token_file=str(token)) as h:
        h.exporter.submit(at(T0_MS))
        eventually(lambda: h.samples("sent") > 0, timeout=20)
        token.write_text("second\n")
        h.exporter.submit(at(T0_MS + 1000))
        eventually(lambda: len(receiver.received) == 2, timeout=20)
    assert [r.headers["Authorization"] for r in receiver.received] == [
        "Bearer first",
        "Bearer second",
    ]


def test_basic_auth_from_flags_and_from_the_url(receiver: ScriptedReceiver, tmp_path: Path) -> None:
    password = tmp_path / "password"
    password.write_text("s3cret\n")
    with running(
        receiver.url, basic_auth_username="relay", basic_auth_password_file=str(password)
    ) as h:
        h.exporter.submit(at(T0_MS))
        eventually(lambda: h.samples("sent") > 0, timeout=20)
    with_user = receiver.url.replace("http://", "http://user%40x:p%3Ass@")
    with running(with_user) as h:
        assert "user" not in h.url and "p%3Ass" not in h.url
        h.exporter.submit(at(T0_MS))
        eventually(lambda: h.samples("sent") > 0, timeout=20)
    decoded = [
        base64.b64decode(r.headers["Authorization"].removeprefix("Basic ")).decode()
        for r in receiver.received
    ]
    assert decoded == ["relay:s3cret", "user@x:p:ss"]


def test_mutual_tls_to_the_receiver(tmp_path: Path) -> None:
    ca = CertificateAuthority(tmp_path / "pki")
    server, client = ca.issue("receiver", server=True), ca.issue("relay", server=False)
    tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    tls.load_cert_chain(server.cert, server.key)
    tls.load_verify_locations(ca.cert_path)
    tls.verify_mode = ssl.CERT_REQUIRED
    with ScriptedReceiver(tls=tls) as secure:
        mutual = {"tls_ca_file": str(ca.cert_path)}
        with running(
            secure.url, **mutual, tls_cert_file=str(client.cert), tls_key_file=str(client.key)
        ) as h:
            h.exporter.submit(at(T0_MS))
            eventually(lambda: h.samples("sent") > 0, timeout=20)
        with running(secure.url, **mutual) as h:  # no client certificate: refused, retried
            h.exporter.submit(at(T0_MS))
            eventually(lambda: h.samples("retried") > 0, timeout=20)
            assert h.samples("sent") == 0
        named = secure.url.replace("127.0.0.1", "localhost")
        with running(
            named,
            **mutual,
            tls_cert_file=str(client.cert),
            tls_key_file=str(client.key),
            tls_server_name="receiver",
        ) as h:
            h.exporter.submit(at(T0_MS))
            eventually(lambda: h.samples("sent") > 0, timeout=20)


def test_receiver_settings_are_validated(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="http"):
        Receiver("ftp://example/write").validate()
    with pytest.raises(ValueError, match="exclude"):
        Receiver("http://h/w", bearer_token_file=__file__, basic_auth_username="u").validate()
    with pytest.raises(ValueError, match="go together"):
        Receiver("https://h/w", tls_cert_file=__file__).validate()
    with pytest.raises(ValueError, match="readable"):
        Receiver("https://h/w", tls_ca_file=str(tmp_path / "missing")).validate()
    one = Receiver("http://h/w")
    with pytest.raises(ValueError, match="twice"):
        ExportConfig(receivers=(one, replace(one, timeout_seconds=3))).validate()


@pytest.mark.parametrize(
    ("header", "seconds"),
    [("7", 7.0), ("100000", 300.0), ("soon", None), ("", None), (None, None)],
)
def test_retry_after_header(header: str | None, seconds: float | None) -> None:
    assert parse_retry_after(header, 0.0) == seconds


def test_retry_after_as_a_date() -> None:
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:10 GMT", 1445412480.0) == 10.0


STALE = (0x7FF0000000000002).to_bytes(8, "little")


def with_pods(ms: int, *names: str) -> tm.Metrics:
    out = at(ms)
    del out.pods[:]
    out.pods.extend(pod(name, containers=[container("app", f"c-{name}")]) for name in names)
    return out


def test_series_of_a_pod_that_ended_get_the_staleness_marker(
    receiver: ScriptedReceiver, exporter: Harness
) -> None:
    export = exporter.exporter
    export.submit(with_pods(T0_MS, "web-1", "web-2"))
    export.submit(with_pods(T0_MS + 1000, "web-1"))
    export.submit(with_pods(T0_MS + 2000, "web-1"))
    eventually(lambda: len(receiver.received) == 3, timeout=20)
    first, second, third = (r.request for r in receiver.received)
    assert first is not None and second is not None and third is not None

    def labels(series: object) -> tuple[tuple[str, str], ...]:
        return tuple((label.name, label.value) for label in series.labels)  # type: ignore[attr-defined]

    ended = {labels(s) for s in first.timeseries if ("pod", "web-2") in labels(s)}
    assert ended
    stale = {labels(s) for s in second.timeseries if struct.pack("<d", s.samples[0].value) == STALE}
    assert stale == ended  # every series of the pod that ended, and nothing else
    assert {s.samples[0].timestamp for s in second.timeseries} == {T0_MS + 1000}
    assert not any(struct.pack("<d", s.samples[0].value) == STALE for s in third.timeseries)
    assert len(third.timeseries) == len(second.timeseries) - len(ended)


def test_the_same_series_in_another_order_get_no_staleness_marker(
    receiver: ScriptedReceiver, exporter: Harness
) -> None:
    """Pods, their containers and their labels listed in another order are the same series:
    nothing ended, so nothing is marked stale."""

    def shuffled(ms: int, order: slice) -> tm.Metrics:
        out = at(ms)
        del out.pods[:]
        pods = [
            pod(
                name,
                containers=[container(c, f"{name}-{c}") for c in ("app", "proxy")][order],
                labels=dict([("app", name), ("tier", "web")][order]),
            )
            for name in ("web-1", "web-2")
        ]
        out.pods.extend(pods[order])
        return out

    export = exporter.exporter
    export.submit(shuffled(T0_MS, slice(None)))
    export.submit(shuffled(T0_MS + 1000, slice(None, None, -1)))
    eventually(lambda: len(receiver.received) == 2, timeout=20)
    first, second = (r.request for r in receiver.received)
    assert first is not None and second is not None

    def series(request: object) -> set[tuple[tuple[str, str], ...]]:
        return {
            tuple((label.name, label.value) for label in s.labels)
            for s in request.timeseries  # type: ignore[attr-defined]
        }

    assert not [s for s in second.timeseries if struct.pack("<d", s.samples[0].value) == STALE]
    assert series(second) == series(first)
    assert any(("container", "proxy") in labels for labels in series(first))


def test_series_a_row_that_stays_stops_writing_get_the_staleness_marker(
    receiver: ScriptedReceiver, exporter: Harness
) -> None:
    """The container stays, one of its figures stops being reported and its state label
    changes; the pod's interface stays but reports nothing (a row with no sample left)."""
    export = exporter.exporter
    export.submit(with_pods(T0_MS, "web-1"))
    fewer = with_pods(T0_MS + 1000, "web-1")
    app = fewer.pods[0].containers[0]
    app.memory.ClearField("major_page_faults")
    app.state = tm.CONTAINER_STATE_EXITED
    for field in ("receive_bytes", "transmit_bytes"):
        fewer.pods[0].network[0].ClearField(field)
    export.submit(fewer)
    again = tm.Metrics()
    again.CopyFrom(fewer)
    again.collected_at_unix_nanos = (T0_MS + 2000) * 1_000_000
    export.submit(again)
    eventually(lambda: len(receiver.received) == 3, timeout=20)
    first, second, third = (r.request for r in receiver.received)
    assert first is not None and second is not None and third is not None

    def series(request: object, *, stale: bool) -> set[tuple[tuple[str, str], ...]]:
        return {
            tuple((label.name, label.value) for label in s.labels)
            for s in request.timeseries  # type: ignore[attr-defined]
            if (struct.pack("<d", s.samples[0].value) == STALE) is stale
        }

    ended = series(first, stale=False) - series(second, stale=False)
    names = {dict(labels)["__name__"] for labels in ended}
    assert any("major" in name for name in names), names
    assert any("network" in name for name in names), names
    assert any(("state", "running") in labels for labels in ended), ended
    assert series(second, stale=True) == ended  # those series, and nothing else
    assert not series(third, stale=True)
