"""The process's C library, for the calls Python has no binding for (adjtimex,
getifaddrs, malloc_trim)."""

from __future__ import annotations

import ctypes
import os

LIBC = ctypes.CDLL(None, use_errno=True)


def errno_error(call: str) -> OSError:
    """The OSError for the errno a failed `call` through LIBC left."""
    error = ctypes.get_errno()
    return OSError(error, f"{call}: {os.strerror(error)}")
