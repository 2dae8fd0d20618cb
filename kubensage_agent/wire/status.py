"""gRPC status codes and the error a call ends with, as the gRPC specification numbers them."""

from __future__ import annotations

import enum


class StatusCode(enum.IntEnum):
    OK = 0
    CANCELLED = 1
    UNKNOWN = 2
    INVALID_ARGUMENT = 3
    DEADLINE_EXCEEDED = 4
    NOT_FOUND = 5
    ALREADY_EXISTS = 6
    PERMISSION_DENIED = 7
    RESOURCE_EXHAUSTED = 8
    FAILED_PRECONDITION = 9
    ABORTED = 10
    OUT_OF_RANGE = 11
    UNIMPLEMENTED = 12
    INTERNAL = 13
    UNAVAILABLE = 14
    DATA_LOSS = 15
    UNAUTHENTICATED = 16


# A reply without grpc-status: the code its HTTP status stands for (gRPC's
# http-grpc-status-mapping.md); any other HTTP status is UNKNOWN.
HTTP_STATUS_CODES = {
    400: StatusCode.INTERNAL,
    401: StatusCode.UNAUTHENTICATED,
    403: StatusCode.PERMISSION_DENIED,
    404: StatusCode.UNIMPLEMENTED,
    429: StatusCode.UNAVAILABLE,
    502: StatusCode.UNAVAILABLE,
    503: StatusCode.UNAVAILABLE,
    504: StatusCode.UNAVAILABLE,
}

# A stream reset by the peer: the code its HTTP/2 error stands for (as grpc-go maps them);
# any other error is INTERNAL.
RESET_CODES = {
    0x7: StatusCode.UNAVAILABLE,  # REFUSED_STREAM: not processed, safe to retry
    0x8: StatusCode.CANCELLED,  # CANCEL
    0xB: StatusCode.RESOURCE_EXHAUSTED,  # ENHANCE_YOUR_CALM
    0xC: StatusCode.PERMISSION_DENIED,  # INADEQUATE_SECURITY
}

# Details come from the peer and end up in logs and /status: bounded.
MAX_DETAILS_CHARS = 1024


class RpcError(Exception):
    """A call that ended with a status other than OK, or never reached the peer."""

    def __init__(
        self,
        code: StatusCode,
        details: str,
        trailers: tuple[tuple[str, str], ...] = (),
    ) -> None:
        self.code = code
        self.details = details[:MAX_DETAILS_CHARS]
        self.trailers = trailers
        super().__init__(f"{code.name}: {self.details}")
