"""Who a peer is, and for which nodes it may report: one interface for every mode.

Each mode (bearer tokens from a file, client certificates, Kubernetes TokenReview)
turns a peer into a `Grant` naming the nodes it may report for, or refuses it. With
several modes configured a peer must pass all of them and may report only for a node
every grant allows. Streams are authenticated again every reload interval, so a token
or certificate revoked meanwhile ends its open streams.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import grpc


@dataclass(frozen=True)
class NodeScope:
    """Node names a credential is valid for: exact names and glob patterns, or any."""

    names: frozenset[str] = frozenset()
    patterns: tuple[str, ...] = ()
    any_node: bool = False

    def allows(self, node: str) -> bool:
        if self.any_node or node in self.names:
            return True
        return any(fnmatch.fnmatchcase(node, pattern) for pattern in self.patterns)

    def __str__(self) -> str:
        if self.any_node:
            return "any node"
        return ", ".join(sorted(self.names) + list(self.patterns)) or "no node"


ANY_NODE = NodeScope(any_node=True)


@dataclass(frozen=True)
class Grant:
    subject: str  # who the peer is, for logs ("token 2 of /etc/...", "certificate CN=...")
    scope: NodeScope


class AuthRefusedError(Exception):
    """The peer is refused; `reason` is a counter label, `code` the gRPC status it gets."""

    def __init__(
        self, reason: str, detail: str, code: grpc.StatusCode = grpc.StatusCode.UNAUTHENTICATED
    ) -> None:
        super().__init__(detail)
        self.reason = reason
        self.code = code


@dataclass(frozen=True)
class Peer:
    """What a stream presents: its address, bearer token and TLS identity."""

    address: str
    bearer: str | None = None
    certificate_pem: bytes | None = None
    malformed_authorization: bool = field(default=False)

    @classmethod
    def from_context(cls, context: grpc.aio.ServicerContext[Any, Any]) -> Peer:
        metadata = {key: value for key, value in context.invocation_metadata() or ()}
        authorization = str(metadata.get("authorization", ""))
        bearer, malformed = None, False
        if authorization:
            scheme, _, presented = authorization.partition(" ")
            if scheme.lower() == "bearer" and presented.strip():
                bearer = presented.strip()
            else:
                malformed = True
        certificates = auth_property(context.auth_context(), "x509_pem_cert")
        return cls(
            address=context.peer(),
            bearer=bearer,
            certificate_pem=certificates[0] if certificates else None,
            malformed_authorization=malformed,
        )

    def require_bearer(self) -> str:
        if self.malformed_authorization:
            raise AuthRefusedError("malformed", "the authorization header is not 'Bearer <token>'")
        if self.bearer is None:
            raise AuthRefusedError("missing", "no bearer token")
        return self.bearer


def auth_property(context: Mapping[str, Iterable[bytes]], name: str) -> list[bytes]:
    return list(context.get(name, ()))


class Authenticator(Protocol):
    mode: str

    def describe(self) -> str:
        """One line for the start-up log: what this mode checks and what it allows."""
        ...

    async def authenticate(self, peer: Peer) -> Grant:
        """The peer's grant, or AuthRefusedError; called at stream start and every reload."""
        ...


class Authenticators:
    """Every configured mode; a peer must pass each of them."""

    def __init__(self, modes: Sequence[Authenticator]) -> None:
        self.modes = tuple(modes)

    def __bool__(self) -> bool:
        return bool(self.modes)

    async def authenticate(self, peer: Peer) -> list[Grant]:
        return [await mode.authenticate(peer) for mode in self.modes]


def allowed(grants: Sequence[Grant], node: str) -> bool:
    return all(grant.scope.allows(node) for grant in grants)


def describe_grants(grants: Sequence[Grant]) -> str:
    return "; ".join(f"{g.subject} for {g.scope}" for g in grants) or "unauthenticated"
