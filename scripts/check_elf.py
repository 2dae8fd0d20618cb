"""Refuse a binary built for the wrong architecture: compare each ELF's e_machine with ARCH."""

from __future__ import annotations

import struct
import sys
from pathlib import Path

E_MACHINE = {"amd64": 62, "arm64": 183}


def elf_machine(path: Path) -> int:
    header = path.read_bytes()[:20]
    if header[:4] != b"\x7fELF":
        raise SystemExit(f"{path} is not an ELF executable")
    order = "<" if header[5] == 1 else ">"
    return int(struct.unpack_from(f"{order}H", header, 18)[0])


def main() -> None:
    arch, paths = sys.argv[1], [Path(p) for p in sys.argv[2:]]
    executables = [p for p in paths if p.is_file()]
    if not executables:
        raise SystemExit("no executables to check")
    for path in executables:
        machine = elf_machine(path)
        if machine != E_MACHINE[arch]:
            raise SystemExit(f"{path} has ELF machine {machine}, expected {arch}")
        print(f"{path}: linux-{arch} ok")


if __name__ == "__main__":
    main()
