"""Regenerate the Python protobuf/gRPC modules from proto/ into OUT_DIR/kubensage_api.

protoc's virtual include path (``kubensage_api=proto``) makes the generated
imports fully qualified, so nothing is ever importable as a top-level ``proto``.
"""

from __future__ import annotations

import sys
from pathlib import Path

from grpc_tools import protoc

REPO = Path(__file__).resolve().parent.parent
PROTO_ROOT = REPO / "proto"
PACKAGE = "kubensage_api"


def generate(out_dir: Path) -> list[Path]:
    sources = sorted(PROTO_ROOT.rglob("*.proto"))
    bin_dir = Path(sys.executable).parent
    args = [
        "protoc",
        f"--plugin=protoc-gen-mypy={bin_dir / 'protoc-gen-mypy'}",
        f"--plugin=protoc-gen-mypy_grpc={bin_dir / 'protoc-gen-mypy_grpc'}",
        f"--proto_path={PACKAGE}={PROTO_ROOT}",
        f"--python_out={out_dir}",
        f"--grpc_python_out={out_dir}",
        f"--mypy_out={out_dir}",
        f"--mypy_grpc_out={out_dir}",
    ]
    args += [f"{PACKAGE}/{src.relative_to(PROTO_ROOT)}" for src in sources]
    if protoc.main(args) != 0:
        raise SystemExit("protoc failed")
    package_dir = out_dir / PACKAGE
    for folder in [package_dir, *(p for p in package_dir.rglob("*") if p.is_dir())]:
        init = folder / "__init__.py"
        if not init.exists():
            init.write_text('"""Generated from proto/ by scripts/gen_proto.py; do not edit."""\n')
    (package_dir / "py.typed").touch()
    return sorted(p for p in package_dir.rglob("*") if p.is_file() and "__pycache__" not in p.parts)


if __name__ == "__main__":
    target = Path(sys.argv[1]) if len(sys.argv) > 1 else REPO
    for path in generate(target):
        print(path.relative_to(target))
