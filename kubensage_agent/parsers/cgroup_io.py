"""Block I/O interface files of a container cgroup, per device ("MAJ:MIN"):
v1 blkio.throttle.io_service_bytes / io_serviced (`MAJ:MIN Op N` lines, then `Total N`)
and v2 io.stat (`MAJ:MIN rbytes=N wbytes=N rios=N wios=N dbytes=N dios=N`)."""

from __future__ import annotations

from dataclasses import dataclass

V1_OPS = frozenset({"Read", "Write", "Sync", "Async", "Discard", "Total"})


@dataclass(frozen=True, slots=True)
class DeviceIo:
    read_bytes: int | None
    written_bytes: int | None
    reads: int | None
    writes: int | None


def _device(token: str) -> str:
    major, colon, minor = token.partition(":")
    if not (colon and major.isdigit() and minor.isdigit()):
        raise ValueError(f"bad device number {token!r}")
    return token


def parse_blkio_rwstat(text: str) -> dict[str, tuple[int, int]]:
    """A v1 blkio read/write file as device -> (read, write); bytes or operations,
    depending on the file. Sync, Async, Discard and Total lines are checked and skipped."""
    tokens = text.split()
    if len(tokens) >= 2 and tokens[-2] == "Total":
        del tokens[-2:]
    if len(tokens) % 3:
        raise ValueError(f"malformed blkio file ({len(tokens)} fields)")
    reads: dict[str, int] = {}
    writes: dict[str, int] = {}
    triples = iter(tokens)
    for device, op, value in zip(triples, triples, triples, strict=True):
        if op not in V1_OPS:
            raise ValueError(f"unknown blkio operation {op!r}")
        count = int(value)
        if op == "Read":
            reads[_device(device)] = count
        elif op == "Write":
            writes[_device(device)] = count
    return {device: (reads.get(device, 0), writes.get(device, 0)) for device in reads | writes}


def _keyed(fields: list[str], key: str) -> int | None:
    prefix = key + "="
    for field in fields:
        if field.startswith(prefix):
            return int(field[len(prefix) :])
    return None


def parse_io_stat(text: str) -> dict[str, DeviceIo]:
    """v2 io.stat as device -> counters; keys this kernel does not show stay None."""
    devices = {}
    for raw in text.splitlines():
        fields = raw.split()
        if not fields:
            continue
        if len(fields) < 2 or any("=" not in field for field in fields[1:]):
            raise ValueError(f"malformed io.stat line {raw!r}")
        devices[_device(fields[0])] = DeviceIo(
            read_bytes=_keyed(fields, "rbytes"),
            written_bytes=_keyed(fields, "wbytes"),
            reads=_keyed(fields, "rios"),
            writes=_keyed(fields, "wios"),
        )
    return devices
