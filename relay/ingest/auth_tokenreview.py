"""Kubernetes ServiceAccount tokens checked by TokenReview: a report only for the node
the token's pod runs on.

The agent presents its projected ServiceAccount token (audience `kubensage`). The
API server says whether it is valid, for which audience, for which service account
and for which pod; the node is `authentication.kubernetes.io/node-name` from the
review (Kubernetes 1.30+) or else the `spec.nodeName` of the pod the token is bound
to, whose uid must match the token's. A token that is not bound to a pod, is for
another audience or another service account is refused.

Reviews are cached briefly (a fleet reconnecting after a relay restart costs one
review per agent), a failed call has a deadline and, for a token that was valid
recently, keeps that answer for a while: an API server outage does not end every
stream. Calls run in threads, a few at a time, and at most REVIEWS_PER_SECOND (with a
burst) for tokens not in the cache, so anyone who can reach the port cannot turn the
relay into a flood of TokenReviews against the API server.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections import OrderedDict
from dataclasses import dataclass

import grpc
import urllib3
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from relay.ingest.auth import AuthRefusedError, Grant, NodeScope, Peer

NODE_NAME_EXTRA = "authentication.kubernetes.io/node-name"
POD_NAME_EXTRA = "authentication.kubernetes.io/pod-name"
POD_UID_EXTRA = "authentication.kubernetes.io/pod-uid"
SERVICE_ACCOUNT_PREFIX = "system:serviceaccount:"
DEFAULT_AUDIENCE = "kubensage"
DEFAULT_SERVICE_ACCOUNTS = ("kubensage:kubensage-agent",)
CACHE_SECONDS = 10.0
STALE_SECONDS = 600.0
MAX_CACHED = 8192
CONCURRENT_REVIEWS = 8
REVIEWS_PER_SECOND = 50.0
REVIEW_BURST = 200.0


class _TokenBucket:
    def __init__(self, rate: float, burst: float) -> None:
        self.rate, self.burst = rate, burst
        self.tokens, self.at = burst, time.monotonic()

    def take(self) -> bool:
        now = time.monotonic()
        self.tokens = min(self.burst, self.tokens + (now - self.at) * self.rate)
        self.at = now
        if self.tokens < 1:
            return False
        self.tokens -= 1
        return True


@dataclass
class _Cached:
    at: float
    grant: Grant | None
    refusal: AuthRefusedError | None


def _first(extra: dict[str, list[str]] | None, key: str) -> str:
    values = (extra or {}).get(key) or []
    return str(values[0]) if values else ""


def service_account_usernames(accounts: tuple[str, ...]) -> frozenset[str]:
    """`namespace:name` -> the username TokenReview reports for that service account."""
    out = set()
    for account in accounts:
        namespace, _, name = account.partition(":")
        if not namespace or not name:
            raise ValueError(f"service account {account!r} is not namespace:name")
        out.add(f"{SERVICE_ACCOUNT_PREFIX}{namespace}:{name}")
    return frozenset(out)


class TokenReviewer:
    mode = "tokenreview"

    def __init__(
        self,
        api: client.ApiClient,
        *,
        audience: str = DEFAULT_AUDIENCE,
        service_accounts: tuple[str, ...] = DEFAULT_SERVICE_ACCOUNTS,
        timeout_seconds: float = 5.0,
        cache_seconds: float = CACHE_SECONDS,
        reviews_per_second: float = REVIEWS_PER_SECOND,
        review_burst: float = REVIEW_BURST,
    ) -> None:
        self.reviews = client.AuthenticationV1Api(api)
        self.core = client.CoreV1Api(api)
        self.audience = audience
        self.usernames = service_account_usernames(service_accounts)
        self.timeout_seconds = timeout_seconds
        self.cache_seconds = cache_seconds
        self._cache: OrderedDict[bytes, _Cached] = OrderedDict()
        self._slots = asyncio.Semaphore(CONCURRENT_REVIEWS)
        self._budget = _TokenBucket(reviews_per_second, review_burst)

    def describe(self) -> str:
        accounts = ", ".join(sorted(self.usernames))
        return f"TokenReview (audience {self.audience}, {accounts}), node = the token's pod's node"

    async def authenticate(self, peer: Peer) -> Grant:
        token = peer.require_bearer()
        key = hashlib.sha256(token.encode()).digest()
        cached = self._cache.get(key)
        now = time.monotonic()
        if cached is not None and now - cached.at < self.cache_seconds:
            return self._answer(cached)
        if cached is None and not self._budget.take():
            raise AuthRefusedError(
                "rate_limited", "too many new tokens to review; retry", grpc.StatusCode.UNAVAILABLE
            )
        async with self._slots:
            try:
                grant = await asyncio.to_thread(self._review, token)
            except AuthRefusedError as refusal:
                if refusal.code == grpc.StatusCode.UNAVAILABLE:
                    if cached is not None and cached.grant and now - cached.at < STALE_SECONDS:
                        return cached.grant
                    raise
                self._remember(key, _Cached(now, None, refusal))
                raise
        self._remember(key, _Cached(now, grant, None))
        return grant

    def _remember(self, key: bytes, entry: _Cached) -> None:
        self._cache[key] = entry
        self._cache.move_to_end(key)
        while len(self._cache) > MAX_CACHED:
            self._cache.popitem(last=False)

    @staticmethod
    def _answer(cached: _Cached) -> Grant:
        if cached.refusal is not None:
            raise cached.refusal
        assert cached.grant is not None
        return cached.grant

    def _review(self, token: str) -> Grant:
        body = client.V1TokenReview(
            spec=client.V1TokenReviewSpec(token=token, audiences=[self.audience])
        )
        try:
            review = self.reviews.create_token_review(body, _request_timeout=self.timeout_seconds)
        except (ApiException, urllib3.exceptions.HTTPError, OSError) as exc:
            raise AuthRefusedError(
                "unavailable", f"TokenReview failed: {exc}", grpc.StatusCode.UNAVAILABLE
            ) from exc
        status = review.status
        if status is None or not status.authenticated:
            error = status.error if status is not None else "no status"
            raise AuthRefusedError("invalid", f"token not accepted: {error}")
        if self.audience not in (status.audiences or []):
            raise AuthRefusedError("wrong_audience", f"token is not for audience {self.audience}")
        user = status.user
        username = user.username if user is not None else ""
        if username not in self.usernames:
            raise AuthRefusedError(
                "not_agent",
                f"{username} is not an agent service account",
                grpc.StatusCode.PERMISSION_DENIED,
            )
        extra = user.extra if user is not None else None
        node = _first(extra, NODE_NAME_EXTRA) or self._node_of_pod(username, extra)
        pod = _first(extra, POD_NAME_EXTRA)
        return Grant(f"{username} (pod {pod or '?'})", NodeScope(names=frozenset({node})))

    def _node_of_pod(self, username: str, extra: dict[str, list[str]] | None) -> str:
        """Before Kubernetes 1.30 the review names the pod, not its node: read the pod."""
        name, uid = _first(extra, POD_NAME_EXTRA), _first(extra, POD_UID_EXTRA)
        if not name or not uid:
            raise AuthRefusedError("unbound_token", "the token is not bound to a pod")
        namespace = username.removeprefix(SERVICE_ACCOUNT_PREFIX).split(":", 1)[0]
        try:
            pod = self.core.read_namespaced_pod(
                name, namespace, _request_timeout=self.timeout_seconds
            )
        except ApiException as exc:
            if exc.status == 404:
                raise AuthRefusedError(
                    "invalid", f"the token's pod {namespace}/{name} is gone"
                ) from exc
            raise AuthRefusedError(
                "unavailable", f"reading pod {namespace}/{name}: {exc}", grpc.StatusCode.UNAVAILABLE
            ) from exc
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            raise AuthRefusedError(
                "unavailable", f"reading pod {namespace}/{name}: {exc}", grpc.StatusCode.UNAVAILABLE
            ) from exc
        if pod.metadata is None or pod.metadata.uid != uid:
            raise AuthRefusedError("invalid", f"the token's pod {namespace}/{name} was replaced")
        node = pod.spec.node_name if pod.spec is not None else None
        if not node:
            raise AuthRefusedError("unbound_token", f"pod {namespace}/{name} is not on a node")
        return str(node)
