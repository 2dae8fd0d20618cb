"""Agent messages from the bytes gRPC delivers, bounded at every step before it allocates.

The relay's gRPC server hands messages over still compressed (per-message
decompression off), so the compressed size is known: decompression stops at
`max_message_bytes` and at `max_compression_ratio` times the compressed size. The
wire scan then counts entries and measures strings before anything is parsed;
only a message within the memory budget is parsed, and only one that the scan
found over a cap is walked and cut.
"""

from __future__ import annotations

import zlib
from collections import Counter
from dataclasses import dataclass, field

from google.protobuf.message import DecodeError as ProtobufDecodeError

from kubensage_api.telemetry import telemetry_pb2 as tm
from kubensage_common.protocol import DEFAULT_MAX_MESSAGE_BYTES
from relay.ingest.limits import ReportLimits, drop_unused, enforce_limits
from relay.ingest.wirescan import Plan, WireError, build_plan, scan

GZIP_MAGIC = b"\x1f\x8b"  # never the start of an AgentMessage (wire type 7 does not exist)
GZIP_WINDOW = 16 + zlib.MAX_WBITS
# An AgentMessage wraps a report in a few bytes of its own.
ENVELOPE_BYTES = 64
# Real reports compress 7-60x (the high end: identical annotations on every pod);
# a bomb of repeated empty entries compresses ~1000x.
DEFAULT_MAX_COMPRESSION_RATIO = 200


@dataclass(frozen=True)
class DecodeLimits:
    max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES
    max_compression_ratio: int = DEFAULT_MAX_COMPRESSION_RATIO
    report: ReportLimits = field(default_factory=ReportLimits)

    @property
    def max_wire_bytes(self) -> int:
        """What the gRPC server may accept for one message (compressed or not)."""
        return self.max_message_bytes + ENVELOPE_BYTES


class DecodeError(ValueError):
    """A message the relay will not take; `reason` is a stable counter label."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason


@dataclass(frozen=True)
class Decoded:
    message: tm.AgentMessage
    cuts: Counter[str]
    wire_bytes: int
    message_bytes: int


def gunzip(data: bytes, limits: DecodeLimits) -> bytes:
    """Decompress one gzip message, refusing output past either bound."""
    ceiling = min(limits.max_wire_bytes, len(data) * limits.max_compression_ratio)
    inflater = zlib.decompressobj(GZIP_WINDOW)
    try:
        out = inflater.decompress(data, ceiling + 1)
    except zlib.error as exc:
        raise DecodeError("bad_compression", f"gzip: {exc}") from exc
    if len(out) > ceiling:
        if ceiling < limits.max_wire_bytes:
            raise DecodeError(
                "compression_ratio",
                f"decompresses past {limits.max_compression_ratio}x its {len(data)} bytes",
            )
        raise DecodeError("too_large", f"decompresses past {limits.max_message_bytes} bytes")
    if not inflater.eof or inflater.unused_data:
        raise DecodeError("bad_compression", "gzip stream truncated or followed by garbage")
    return out


class MessageDecoder:
    """Bytes -> AgentMessage under `limits`; pure and thread-safe (run it off the event loop)."""

    def __init__(self, limits: DecodeLimits) -> None:
        self.limits = limits
        self.plan: Plan = build_plan(tm.AgentMessage.DESCRIPTOR, limits.report)

    def decode(self, data: bytes) -> Decoded:
        raw = gunzip(data, self.limits) if data.startswith(GZIP_MAGIC) else data
        if len(raw) > self.limits.max_wire_bytes:
            raise DecodeError(
                "too_large", f"{len(raw)} bytes, over {self.limits.max_message_bytes}"
            )
        try:
            checked = scan(raw, self.plan, self.limits.report.max_entries)
        except WireError as exc:
            raise DecodeError(exc.reason, str(exc)) from exc
        try:
            message = tm.AgentMessage.FromString(raw)
        except ProtobufDecodeError as exc:  # e.g. a string that is not UTF-8
            raise DecodeError("malformed", f"protobuf: {exc}") from exc
        cuts: Counter[str] = Counter()
        if checked.needs_cut:
            cuts = enforce_limits(message, self.limits.report)
        if message.HasField("report"):
            drop_unused(message.report)
        return Decoded(message, cuts, len(data), len(raw))
