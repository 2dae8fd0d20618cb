"""adjtimex(2)'s answer, decoded into seconds and ratios as node_exporter's timex collector
decodes it (see the NOTES of adjtimex(2) for the fixed-point formats)."""

from __future__ import annotations

from dataclasses import dataclass

# adjtimex's return value when the clock is not synchronised (STA_UNSYNC, or a PPS
# signal the kernel does not trust)
TIME_ERROR = 5
# status bit: `offset` is in nanoseconds instead of microseconds
STA_NANO = 0x2000
NANOS = 1e9
MICROS = 1e6
# `freq` is parts per million with a 16-bit binary fraction
PPM_16_FRACTION = 1e6 * 65536


@dataclass(frozen=True, slots=True)
class RawTimex:
    """The struct timex fields node_exporter reports, as the kernel fills them."""

    state: int
    offset: int
    freq: int
    maxerror: int
    esterror: int
    status: int
    constant: int
    tick: int
    tai: int


@dataclass(frozen=True, slots=True)
class ClockState:
    synchronised: bool
    offset_seconds: float
    frequency_adjustment_ratio: float
    max_error_seconds: float
    estimated_error_seconds: float
    status: int
    constant: int
    tick_seconds: float
    tai_offset_seconds: int


def decode_timex(raw: RawTimex) -> ClockState:
    if raw.state < 0:
        raise ValueError(f"adjtimex returned {raw.state}")
    offset_unit = NANOS if raw.status & STA_NANO else MICROS
    return ClockState(
        synchronised=raw.state != TIME_ERROR,
        offset_seconds=raw.offset / offset_unit,
        frequency_adjustment_ratio=1 + raw.freq / PPM_16_FRACTION,
        max_error_seconds=raw.maxerror / MICROS,
        estimated_error_seconds=raw.esterror / MICROS,
        status=raw.status,
        constant=raw.constant,
        tick_seconds=raw.tick / MICROS,
        tai_offset_seconds=raw.tai,
    )
