"""adjtimex(2) with modes=0, which only reads the kernel clock's state (changing it
would need CAP_SYS_TIME, which the agent never has): sync status, offset, errors."""

from __future__ import annotations

import ctypes

from kubensage_agent.collectors.node.base import NodeFiles
from kubensage_agent.libc import LIBC, errno_error
from kubensage_agent.parsers.timex import RawTimex, decode_timex
from kubensage_api.telemetry import telemetry_pb2 as tm


class _Timeval(ctypes.Structure):
    _fields_ = (("tv_sec", ctypes.c_long), ("tv_usec", ctypes.c_long))


class _Timex(ctypes.Structure):
    """glibc's struct timex (sys/timex.h) on LP64 targets (amd64, arm64)."""

    _fields_ = (
        ("modes", ctypes.c_uint),
        ("offset", ctypes.c_long),
        ("freq", ctypes.c_long),
        ("maxerror", ctypes.c_long),
        ("esterror", ctypes.c_long),
        ("status", ctypes.c_int),
        ("constant", ctypes.c_long),
        ("precision", ctypes.c_long),
        ("tolerance", ctypes.c_long),
        ("time", _Timeval),
        ("tick", ctypes.c_long),
        ("ppsfreq", ctypes.c_long),
        ("jitter", ctypes.c_long),
        ("shift", ctypes.c_int),
        ("stabil", ctypes.c_long),
        ("jitcnt", ctypes.c_long),
        ("calcnt", ctypes.c_long),
        ("errcnt", ctypes.c_long),
        ("stbcnt", ctypes.c_long),
        ("tai", ctypes.c_int),
        ("reserved", ctypes.c_int * 11),
    )


_adjtimex = LIBC.adjtimex
_adjtimex.argtypes = (ctypes.POINTER(_Timex),)
_adjtimex.restype = ctypes.c_int


def read_timex() -> RawTimex:
    """The kernel clock's state; OSError when the call is refused (a seccomp profile
    that denies adjtimex, e.g. systemd's ProtectClock=)."""
    state = _Timex()  # modes=0: read only
    result = _adjtimex(ctypes.byref(state))
    if result < 0:
        raise errno_error("adjtimex")
    return RawTimex(
        state=result,
        offset=state.offset,
        freq=state.freq,
        maxerror=state.maxerror,
        esterror=state.esterror,
        status=state.status,
        constant=state.constant,
        tick=state.tick,
        tai=state.tai,
    )


def collect(files: NodeFiles, node: tm.Node) -> None:
    clock = decode_timex(read_timex())
    out = node.clock
    out.synchronised = clock.synchronised
    out.offset_seconds = clock.offset_seconds
    out.frequency_adjustment_ratio = clock.frequency_adjustment_ratio
    out.max_error_seconds = clock.max_error_seconds
    out.estimated_error_seconds = clock.estimated_error_seconds
    out.status = clock.status
    out.constant = clock.constant
    out.tick_seconds = clock.tick_seconds
    out.tai_offset_seconds = clock.tai_offset_seconds
