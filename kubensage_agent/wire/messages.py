"""gRPC's length-prefixed messages on an HTTP/2 stream, gzip included, with bounded sizes.

Each message is one flag byte (1 = compressed with the stream's grpc-encoding), a
big-endian 32-bit length, and the bytes. A compressed message is inflated only up to the
receive limit, so a small compressed bomb costs what the limit allows and no more.
"""

from __future__ import annotations

import math
import struct
import zlib

from kubensage_agent.wire.status import RpcError, StatusCode

PREFIX = struct.Struct(">BI")  # compressed flag, length
GZIP_WBITS = 31  # zlib's window bits for a gzip header and trailer
# grpc-timeout carries at most 8 digits (the gRPC HTTP/2 protocol)
MAX_TIMEOUT_DIGITS = 99_999_999


def frame(payload: bytes, compress: bool) -> bytes:
    """One message on the wire, gzip-compressed when the stream says grpc-encoding: gzip."""
    if compress:
        packer = zlib.compressobj(wbits=GZIP_WBITS)
        payload = packer.compress(payload) + packer.flush()
    return PREFIX.pack(int(compress), len(payload)) + payload


def gunzip_bounded(data: bytes, limit: int) -> bytes:
    """The inflated message, or RESOURCE_EXHAUSTED once it would exceed `limit` bytes."""
    inflater = zlib.decompressobj(wbits=GZIP_WBITS)
    try:
        out = inflater.decompress(data, limit + 1)
    except zlib.error as exc:
        raise RpcError(StatusCode.INTERNAL, f"undecodable gzip message: {exc}") from exc
    if len(out) > limit or inflater.unconsumed_tail:
        raise RpcError(
            StatusCode.RESOURCE_EXHAUSTED, f"message inflates past the {limit}-byte limit"
        )
    return out


def timeout_header(seconds: float) -> str:
    """grpc-timeout for `seconds`, rounded up to a millisecond (never shorter than asked)."""
    millis = max(1, math.ceil(seconds * 1000))
    if millis <= MAX_TIMEOUT_DIGITS:
        return f"{millis}m"
    return f"{min(math.ceil(seconds), MAX_TIMEOUT_DIGITS)}S"


class MessageReader:
    """Splits a stream's DATA into whole messages; bounded by `limit` per message."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.gzip = False  # set from the reply's grpc-encoding header
        self._buffer = bytearray()

    def feed(self, data: bytes) -> list[bytes]:
        """Every message `data` completes, in order."""
        self._buffer += data
        messages = []
        while len(self._buffer) >= PREFIX.size:
            compressed, length = PREFIX.unpack_from(self._buffer)
            if length > self.limit:
                raise RpcError(
                    StatusCode.RESOURCE_EXHAUSTED,
                    f"received message of {length} bytes exceeds the {self.limit}-byte limit",
                )
            end = PREFIX.size + length
            if len(self._buffer) < end:
                break
            payload = bytes(self._buffer[PREFIX.size : end])
            del self._buffer[:end]
            if compressed:
                if not self.gzip:
                    raise RpcError(
                        StatusCode.INTERNAL, "compressed message without grpc-encoding: gzip"
                    )
                payload = gunzip_bounded(payload, self.limit)
            messages.append(payload)
        return messages

    @property
    def partial(self) -> bool:
        """Whether the stream ended inside a message."""
        return bool(self._buffer)
