"""gRPC message framing: split anywhere, gzip both ways, and every size bounded."""

from __future__ import annotations

import os
import zlib

import pytest

from kubensage_agent.wire.messages import MessageReader, frame, gunzip_bounded, timeout_header
from kubensage_agent.wire.status import RpcError, StatusCode


@pytest.mark.parametrize("gzip", [False, True])
def test_messages_split_at_every_byte_come_out_whole_and_in_order(gzip: bool) -> None:
    payloads = [b"", b"a", os.urandom(300), b"x" * 70_000]
    wire = b"".join(frame(p, gzip) for p in payloads)
    reader = MessageReader(limit=1 << 20)
    reader.gzip = gzip
    out: list[bytes] = []
    for start in range(0, len(wire), 7):
        out += reader.feed(wire[start : start + 7])
    assert out == payloads
    assert not reader.partial


def test_a_compressed_bomb_is_refused_at_the_limit_not_inflated() -> None:
    bomb = frame(b"\0" * (50 << 20), compress=True)
    assert len(bomb) < 100_000  # 50 MiB of zeros travel in a few KiB
    reader = MessageReader(limit=1 << 20)
    reader.gzip = True
    with pytest.raises(RpcError) as caught:
        reader.feed(bomb)
    assert caught.value.code == StatusCode.RESOURCE_EXHAUSTED


def test_a_length_prefix_past_the_limit_is_refused_before_its_bytes_arrive() -> None:
    reader = MessageReader(limit=1024)
    with pytest.raises(RpcError) as caught:
        reader.feed(b"\x00\x7f\xff\xff\xff")  # announces 2 GiB
    assert caught.value.code == StatusCode.RESOURCE_EXHAUSTED


def test_compressed_flag_without_gzip_encoding_and_broken_gzip_are_errors() -> None:
    reader = MessageReader(limit=1024)
    with pytest.raises(RpcError) as caught:
        reader.feed(frame(b"hello", compress=True))
    assert caught.value.code == StatusCode.INTERNAL
    with pytest.raises(RpcError) as caught:
        gunzip_bounded(b"not gzip at all", 1024)
    assert caught.value.code == StatusCode.INTERNAL


def test_gzip_matches_what_zlib_reads() -> None:
    data = os.urandom(64) * 100
    framed = frame(data, compress=True)
    assert framed[0] == 1
    assert zlib.decompress(framed[5:], wbits=31) == data


@pytest.mark.parametrize(
    ("seconds", "header"),
    [(0.0, "1m"), (0.0001, "1m"), (1.2341, "1235m"), (5.0, "5000m"), (10**6, "1000000S")],
)
def test_grpc_timeout_is_never_shorter_than_asked_and_fits_eight_digits(
    seconds: float, header: str
) -> None:
    assert timeout_header(seconds) == header
