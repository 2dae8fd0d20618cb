"""Bearer tokens from a file, each optionally restricted to node names; re-read on change.

One token per line, then optionally the nodes it may report for, as names or glob
patterns separated by spaces or commas:

    s3cret-for-any-node
    t0ken-a node-a
    t0ken-workers worker-*, gpu-7

A token without nodes may report for any node; such tokens are named in the log at
start, because anyone holding one can overwrite any node. Several lines let a token be
rotated with overlap. Blank lines and lines starting with # are ignored.
"""

from __future__ import annotations

import hmac
import logging
import threading
from dataclasses import dataclass
from pathlib import Path

from kubensage_common.tls import file_signature
from relay.ingest.auth import ANY_NODE, AuthRefusedError, Grant, NodeScope, Peer

logger = logging.getLogger(__name__)

GLOB_CHARACTERS = frozenset("*?[")


@dataclass(frozen=True)
class TokenLine:
    number: int
    token: str
    scope: NodeScope


def parse_token_file(text: str) -> list[TokenLine]:
    lines = []
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        token, _, rest = line.partition(" ")
        nodes = [n for n in rest.replace(",", " ").split() if n]
        if not nodes:
            scope = ANY_NODE
        else:
            scope = NodeScope(
                names=frozenset(n for n in nodes if not GLOB_CHARACTERS & set(n)),
                patterns=tuple(n for n in nodes if GLOB_CHARACTERS & set(n)),
            )
        lines.append(TokenLine(number, token, scope))
    return lines


class TokenFile:
    """Accepted tokens and the nodes each may report for."""

    mode = "token-file"

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._signature: tuple[int, int, int] | None = None
        self._lines: tuple[TokenLine, ...] = ()
        self._reload()

    def _reload(self) -> None:
        signature = file_signature(self.path)
        if signature == self._signature:
            return
        lines = tuple(parse_token_file(self.path.read_text()))
        if not lines:
            raise ValueError(f"token file {self.path} holds no token")
        if self._signature is not None:
            logger.info("token file %s changed; %s tokens accepted now", self.path, len(lines))
        self._lines, self._signature = lines, signature

    def describe(self) -> str:
        unrestricted = [line.number for line in self._lines if line.scope.any_node]
        text = f"bearer tokens from {self.path} ({len(self._lines)} tokens"
        if unrestricted:
            lines = ", ".join(map(str, unrestricted))
            text += f"; UNRESTRICTED, may report as any node: line {lines}"
        return text + ")"

    def reload(self) -> None:
        with self._lock:
            try:
                self._reload()
            except (OSError, ValueError) as exc:
                logger.warning("token file unreadable, keeping the tokens read before: %s", exc)

    async def authenticate(self, peer: Peer) -> Grant:
        presented = peer.require_bearer().encode()
        self.reload()
        match = None
        for line in self._lines:  # every line is compared: no early exit to time
            if hmac.compare_digest(presented, line.token.encode()) and match is None:
                match = line
        if match is None:
            raise AuthRefusedError("invalid", "bearer token not accepted")
        return Grant(f"token on line {match.number} of {self.path}", match.scope)
