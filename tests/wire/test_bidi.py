"""The asyncio bidirectional call against a real grpcio server, and a peer gone silent."""

from __future__ import annotations

import asyncio
import os
import socket
import threading
from typing import Any

import pytest

from kubensage_agent.wire.bidi import BidiCall, CallEndedError
from kubensage_agent.wire.status import RpcError, StatusCode
from kubensage_agent.wire.transport import MAX_LOOKUPS_IN_FLIGHT
from kubensage_lab.processes import free_port
from tests.wire.conftest import BIDI, RawPeer, WireServer

LIMIT = 16 << 20
GATE_SECONDS = 30.0


async def open_call(address: str, **kwargs: object) -> BidiCall:
    options: dict[str, object] = {
        "connect_timeout": 5.0,
        "send_limit": LIMIT,
        "receive_limit": LIMIT,
        **kwargs,
    }
    return await BidiCall.open(address, BIDI, **options)  # type: ignore[arg-type]


async def echoed(call: BidiCall, text: bytes) -> bytes | None:
    """What the server echoes of `text` on `call`, which is closed after."""
    try:
        await call.write(b"echo:" + text)
        return await call.read()
    finally:
        await call.close()


@pytest.mark.parametrize("gzip", [False, True])
def test_messages_larger_than_every_window_go_both_ways_intact(
    tcp_server: tuple[str, WireServer], gzip: bool
) -> None:
    address, server = tcp_server
    blob = os.urandom(3 << 20)  # incompressible: 3 MiB on the wire even with gzip

    async def scenario() -> list[bytes | None]:
        call = await open_call(address, gzip=gzip, metadata=(("authorization", "Bearer t"),))
        try:
            await call.write(b"echo:" + blob)
            await call.write(b"echo:second")
            await call.done_writing()
            return [await call.read(), await call.read(), await call.read()]
        finally:
            await call.close()

    assert asyncio.run(scenario()) == [blob, b"second", None]
    assert ("authorization", "Bearer t") in server.metadata


def test_the_status_the_server_ends_with_is_raised_with_its_trailers(
    tcp_server: tuple[str, WireServer],
) -> None:
    address, _ = tcp_server

    async def scenario() -> RpcError:
        call = await open_call(address)
        try:
            await call.write(b"abort:INVALID_ARGUMENT:bad report")
            with pytest.raises(RpcError) as caught:
                await call.read()
            with pytest.raises(CallEndedError):
                await call.write(b"echo:late")
            return caught.value
        finally:
            await call.close()

    error = asyncio.run(scenario())
    assert error.code == StatusCode.INVALID_ARGUMENT and error.details == "bad report"
    assert ("kubensage-refused", "report") in error.trailers


def test_a_message_over_the_send_limit_is_refused_before_it_is_sent(
    tcp_server: tuple[str, WireServer],
) -> None:
    address, _ = tcp_server

    async def scenario() -> bytes | None:
        call = await open_call(address, send_limit=1024)
        try:
            with pytest.raises(RpcError) as caught:
                await call.write(b"x" * 2048)
            assert caught.value.code == StatusCode.RESOURCE_EXHAUSTED
            await call.write(b"echo:still here")
            return await call.read()
        finally:
            await call.close()

    assert asyncio.run(scenario()) == b"still here"


@pytest.mark.parametrize("raw_peer", ["silent"], indirect=True)
def test_a_peer_that_stops_answering_pings_ends_the_call(raw_peer: RawPeer) -> None:
    async def scenario() -> RpcError | None:
        call = await open_call(
            raw_peer.address, keepalive_seconds=0.2, keepalive_timeout_seconds=0.3
        )
        try:
            await call.write(b"echo:anyone?")
            return await asyncio.wait_for(call.finished(), 10)
        finally:
            await call.close()

    error = asyncio.run(scenario())
    assert error is not None and error.code == StatusCode.UNAVAILABLE
    assert "keepalive" in error.details


def test_nothing_listening_raises_oserror() -> None:
    with pytest.raises(OSError):
        asyncio.run(open_call(f"127.0.0.1:{free_port()}"))


def test_a_name_is_looked_up_and_its_addresses_tried_in_order_until_one_answers(
    tcp_server: tuple[str, WireServer], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A relay name with several addresses (a Service with dual-stack or stale records): one
    whose socket cannot be made (IPv6 off on the node, here a family without streams) and
    a refused one are passed over, as the loop's own connect would."""
    address, _ = tcp_server
    port = int(address.rpartition(":")[2])
    refused = ("127.0.0.1", free_port())
    looked_up: list[str] = []

    def getaddrinfo(host: str, *args: Any, **kwargs: Any) -> list[Any]:
        looked_up.append(host)
        stream = (socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP, "")
        no_streams = (socket.AF_PACKET, socket.SOCK_STREAM, 0, "", ("lo", 0))
        return [no_streams, (*stream, refused), (*stream, ("127.0.0.1", port))]

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)

    async def scenario() -> bytes | None:
        return await echoed(await open_call(f"relay.example:{port}"), b"through the second")

    assert asyncio.run(scenario()) == b"through the second"
    assert looked_up == ["relay.example"]


def test_a_name_no_address_of_which_answers_raises_oserror_naming_each(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    ports = [free_port(), free_port()]
    stream = (socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP, "")
    monkeypatch.setattr(
        socket, "getaddrinfo", lambda *_, **__: [(*stream, ("127.0.0.1", p)) for p in ports]
    )
    with pytest.raises(OSError, match=r"cannot connect to relay\.example:9") as caught:
        asyncio.run(open_call("relay.example:9"))
    assert str(caught.value).count("ConnectionRefusedError") == 2
    assert all(str(port) in str(caught.value) for port in ports)


def test_a_name_without_addresses_raises_oserror_saying_so(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(socket, "getaddrinfo", lambda *_, **__: [])
    with pytest.raises(OSError, match="the name has no address"):
        asyncio.run(open_call("relay.example:9"))


def test_lookups_left_unanswered_are_bounded_and_their_slots_come_back(
    tcp_server: tuple[str, WireServer], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each attempt against a resolver that never answers gives up at its deadline; the
    threads those lookups hold are bounded, and freed once the resolver answers."""
    address, _ = tcp_server
    port = int(address.rpartition(":")[2])
    answering = threading.Event()
    asked: list[str] = []

    def getaddrinfo(host: str, *args: Any, **kwargs: Any) -> list[Any]:
        asked.append(host)
        answering.wait(GATE_SECONDS)
        return [(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP, "", ("127.0.0.1", port))]

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    target = f"relay.example:{port}"
    try:
        for _ in range(MAX_LOOKUPS_IN_FLIGHT):
            with pytest.raises(TimeoutError, match=r"no connection within 0\.2 s"):
                asyncio.run(open_call(target, connect_timeout=0.2))
        with pytest.raises(OSError, match=f"{MAX_LOOKUPS_IN_FLIGHT} lookups still unanswered"):
            asyncio.run(open_call(target, connect_timeout=0.2))
        assert len(asked) == MAX_LOOKUPS_IN_FLIGHT
    finally:
        answering.set()

    async def connect_once_slots_are_back() -> bytes | None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + GATE_SECONDS
        while True:
            try:
                call = await open_call(target)
                break
            except OSError as exc:
                if "unanswered" not in str(exc) or loop.time() > deadline:
                    raise
                await asyncio.sleep(0.02)
        return await echoed(call, b"answered")

    assert asyncio.run(connect_once_slots_are_back()) == b"answered"


def test_a_lookup_whose_thread_cannot_start_gives_its_slot_back(
    tcp_server: tuple[str, WireServer], monkeypatch: pytest.MonkeyPatch
) -> None:
    """An attempt the next reconnect can retry: unreachable, as a lookup that failed."""
    address, _ = tcp_server

    def no_thread(self: threading.Thread) -> None:
        raise RuntimeError("can't start new thread")

    with monkeypatch.context() as patched:
        patched.setattr(threading.Thread, "start", no_thread)
        for _ in range(MAX_LOOKUPS_IN_FLIGHT + 1):
            with pytest.raises(
                OSError, match=r"cannot look up 127\.0\.0\.1: can.t start new thread"
            ):
                asyncio.run(open_call(address))

    async def scenario() -> bytes | None:
        return await echoed(await open_call(address), b"threads again")

    assert asyncio.run(scenario()) == b"threads again"


def test_a_server_stopping_with_a_grace_period_lets_the_stream_end_cleanly(
    tcp_server: tuple[str, WireServer],
) -> None:
    """What a relay does on SIGTERM: GOAWAY, then the streams it covers may finish."""
    address, server = tcp_server

    async def scenario() -> list[bytes | None]:
        call = await open_call(address)
        try:
            await call.write(b"echo:before")
            first = await call.read()
            server.server.stop(grace=5)  # returns at once; the GOAWAY follows
            await asyncio.sleep(0.3)
            await call.write(b"echo:during")
            second = await call.read()
            await call.done_writing()
            return [first, second, await call.read()]
        finally:
            await call.close()

    assert asyncio.run(scenario()) == [b"before", b"during", None]
