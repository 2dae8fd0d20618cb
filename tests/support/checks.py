"""Check scripts on disk for tests: a root-owned directory the `nobody` account can traverse."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path


class CheckDir:
    """A check directory under /tmp (pytest's tmp_path is 0700: `nobody` could not exec there),
    plus a world-writable scratch folder where scripts leave markers."""

    def __init__(self) -> None:
        self.path = Path(tempfile.mkdtemp(prefix="kschecks-", dir="/tmp"))
        self.path.chmod(0o755)
        self.scratch = Path(tempfile.mkdtemp(prefix="ksscratch-", dir="/tmp"))
        self.scratch.chmod(0o1777)

    def script(
        self,
        name: str,
        body: str,
        mode: int = 0o755,
        manifest: str | None = None,
        shell: str = "/bin/sh",
    ) -> Path:
        """Write an executable check; `$SCRATCH` in `body` names the scratch folder (checks
        get no environment but PATH)."""
        path = self.path / name
        temporary = self.path / f".{name}.new"
        temporary.write_text(f"#!{shell}\n{body.replace('$SCRATCH', str(self.scratch))}\n")
        temporary.chmod(mode)
        temporary.rename(path)  # a check appears whole, as a package manager would put it
        if manifest is not None:
            (self.path / f"{name}.yaml").write_text(manifest)
        return path

    def cleanup(self) -> None:
        shutil.rmtree(self.path, ignore_errors=True)
        shutil.rmtree(self.scratch, ignore_errors=True)

    def __enter__(self) -> CheckDir:
        return self

    def __exit__(self, *exc: object) -> None:
        self.cleanup()
