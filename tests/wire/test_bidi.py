"""The asyncio bidirectional call against a real grpcio server, and a peer gone silent."""

from __future__ import annotations

import asyncio
import os

import pytest

from kubensage_agent.wire.bidi import BidiCall, CallEndedError
from kubensage_agent.wire.status import RpcError, StatusCode
from kubensage_lab.processes import free_port
from tests.wire.conftest import BIDI, RawPeer, WireServer

LIMIT = 16 << 20


async def open_call(address: str, **kwargs: object) -> BidiCall:
    options: dict[str, object] = {
        "connect_timeout": 5.0,
        "send_limit": LIMIT,
        "receive_limit": LIMIT,
        **kwargs,
    }
    return await BidiCall.open(address, BIDI, **options)  # type: ignore[arg-type]


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
