"""Hand the heap's free pages back to the kernel once a cycle is done.

A cycle allocates and frees a few MiB (CRI answers, parsed files, the report). glibc
keeps freed pages for reuse and returns them only from the top of a heap, above a
threshold that rises with the largest block freed, so without help the agent's RSS
stays at its busiest cycle's high-water mark plus fragmentation. `malloc_trim(0)`
releases every whole free page of every arena. Other C libraries (musl) have no such
call; there this is a no-op.
"""

from __future__ import annotations

import ctypes
from collections.abc import Callable

from kubensage_agent.libc import LIBC


def _find_malloc_trim() -> Callable[[int], int] | None:
    try:
        function = LIBC.malloc_trim
    except AttributeError:
        return None
    function.argtypes = (ctypes.c_size_t,)
    function.restype = ctypes.c_int
    return function


_MALLOC_TRIM = _find_malloc_trim()


def release_free_memory() -> bool:
    """Return free heap pages to the kernel; True when the C library could."""
    if _MALLOC_TRIM is None:
        return False
    _MALLOC_TRIM(0)
    return True
