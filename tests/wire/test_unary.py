"""Unary calls from a thread against a real grpcio server, and against peers that misbehave."""

from __future__ import annotations

import threading

import pytest

from kubensage_agent.wire.status import RpcError, StatusCode
from kubensage_agent.wire.unary import UnaryChannel
from tests.wire.conftest import UNARY, RawPeer, WireServer

LIMIT = 64 << 20


def test_many_calls_share_one_connection_and_each_answer_finds_its_request(
    unix_server: tuple[str, WireServer],
) -> None:
    target, server = unix_server
    channel = UnaryChannel(target, LIMIT)
    payloads = [f"echo:{i}".encode() for i in range(100)]
    answers = channel.call_many(UNARY, payloads, timeout=10, in_flight=32)
    assert answers == [str(i).encode() for i in range(100)]
    assert channel.call_many(UNARY, [b"echo:again"], timeout=10, in_flight=1) == [b"again"]
    channel.close()
    assert len(server.peers) == 1  # one connection for both rounds


def test_an_answer_far_larger_than_the_http2_default_window_arrives_whole(
    unix_server: tuple[str, WireServer],
) -> None:
    target, _ = unix_server
    channel = UnaryChannel(target, LIMIT)
    [answer] = channel.call_many(UNARY, [b"size:40000000"], timeout=30, in_flight=1)
    channel.close()
    assert isinstance(answer, bytes) and len(answer) == 40_000_000
    assert answer[:512] == bytes(range(256)) * 2


def test_an_answer_past_the_receive_limit_is_refused(unix_server: tuple[str, WireServer]) -> None:
    target, _ = unix_server
    channel = UnaryChannel(target, 1 << 20)
    [answer] = channel.call_many(UNARY, [b"size:2000000"], timeout=10, in_flight=1)
    assert isinstance(answer, RpcError) and answer.code == StatusCode.RESOURCE_EXHAUSTED
    # the connection stays usable for the next call
    assert channel.call_many(UNARY, [b"echo:ok"], timeout=10, in_flight=1) == [b"ok"]
    channel.close()


def test_status_code_details_and_trailers_come_through(unix_server: tuple[str, WireServer]) -> None:
    target, _ = unix_server
    channel = UnaryChannel(target, LIMIT)
    [answer] = channel.call_many(
        UNARY, ["abort:UNIMPLEMENTED:50% naïve\nline".encode()], timeout=10, in_flight=1
    )
    channel.close()
    assert isinstance(answer, RpcError)
    assert answer.code == StatusCode.UNIMPLEMENTED
    assert answer.details == "50% naïve\nline"
    assert ("kubensage-refused", "report") in answer.trailers


def test_the_deadline_ends_calls_the_peer_does_not_answer(
    unix_server: tuple[str, WireServer],
) -> None:
    target, _ = unix_server
    channel = UnaryChannel(target, LIMIT)
    # a deadline a loaded machine answers well within; the held call outlasts any
    answers = channel.call_many(UNARY, [b"echo:fast", b"hold"], timeout=3, in_flight=2)
    channel.close()
    assert answers[0] == b"fast"
    assert isinstance(answers[1], RpcError) and answers[1].code == StatusCode.DEADLINE_EXCEEDED


def test_nothing_listening_is_unavailable_at_once(tmp_path: object) -> None:
    channel = UnaryChannel(f"unix://{tmp_path}/nobody.sock", LIMIT)
    answers = channel.call_many(UNARY, [b"echo:x", b"echo:y"], timeout=5, in_flight=2)
    assert all(isinstance(a, RpcError) and a.code == StatusCode.UNAVAILABLE for a in answers)
    assert "cannot connect" in str(answers[0])


@pytest.mark.parametrize(
    ("raw_peer", "code"),
    [
        ("http503", StatusCode.UNAVAILABLE),
        ("goaway", StatusCode.UNAVAILABLE),
        ("truncated", StatusCode.UNAVAILABLE),
        ("silent", StatusCode.DEADLINE_EXCEEDED),
    ],
    indirect=["raw_peer"],
)
def test_peers_that_misbehave_end_the_call_with_a_status(
    raw_peer: RawPeer, code: StatusCode
) -> None:
    channel = UnaryChannel(raw_peer.address, LIMIT)
    [answer] = channel.call_many(UNARY, [b"echo:x"], timeout=1.0, in_flight=1)
    channel.close()
    assert isinstance(answer, RpcError), answer
    assert answer.code == code, answer


def test_a_server_stopping_with_a_grace_period_finishes_the_call_in_flight(
    unix_server: tuple[str, WireServer],
) -> None:
    target, server = unix_server
    channel = UnaryChannel(target, LIMIT)
    assert channel.call_many(UNARY, [b"echo:warm"], timeout=5, in_flight=1) == [b"warm"]
    stopper = threading.Timer(0.3, lambda: server.server.stop(grace=5))
    stopper.start()
    try:
        # the GOAWAY arrives while the call runs; the call still gets its answer
        answers = channel.call_many(UNARY, [b"sleep:1"], timeout=5, in_flight=1)
    finally:
        stopper.join()
    assert answers == [b"1"]
    # the next call finds no server and says so, instead of using the drained connection
    [after] = channel.call_many(UNARY, [b"echo:x"], timeout=5, in_flight=1)
    assert isinstance(after, RpcError) and after.code == StatusCode.UNAVAILABLE
    channel.close()
