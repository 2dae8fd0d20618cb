"""Bearer-token check for agent streams; the token file is re-read when it changes."""

from __future__ import annotations

import hmac
import os
import threading
from pathlib import Path

from loguru import logger


class TokenFile:
    """Accepted tokens, one per line (several allow a rotation overlap)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._signature: tuple[int, int, int] | None = None
        self._tokens: tuple[str, ...] = ()
        self._reload()

    def _reload(self) -> None:
        stat = os.stat(self.path)
        signature = (stat.st_mtime_ns, stat.st_size, stat.st_ino)
        if signature == self._signature:
            return
        tokens = tuple(line.strip() for line in self.path.read_text().splitlines() if line.strip())
        if not tokens:
            raise ValueError(f"token file {self.path} holds no token")
        if self._signature is not None:
            logger.info("token file {} changed; {} tokens accepted now", self.path, len(tokens))
        self._tokens, self._signature = tokens, signature

    def check(self, authorization: str | None) -> str | None:
        """None when the header carries an accepted token, else the reason it does not."""
        with self._lock:
            try:
                self._reload()
            except (OSError, ValueError) as exc:
                logger.warning("token file unreadable, keeping the tokens read before: {}", exc)
        if not authorization:
            return "missing"
        scheme, _, presented = authorization.partition(" ")
        if scheme.lower() != "bearer" or not presented:
            return "malformed"
        valid = any(hmac.compare_digest(presented.encode(), t.encode()) for t in self._tokens)
        return None if valid else "invalid"
