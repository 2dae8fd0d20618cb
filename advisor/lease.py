"""Leader election on a coordination.k8s.io/v1 Lease, as client-go's leaderelection does.

A replica holds the lease while it renews it every `retry_period`; it gives up
leadership itself when no renewal succeeded for `renew_deadline`, which is shorter
than `lease_duration`, so it stops acting before anyone may take over. Another replica
takes over only after it has seen the lease record unchanged for `lease_duration` of
its own clock (never by comparing the holder's timestamps with its clock, so clock
skew between nodes does not matter). Every write carries the resourceVersion read
just before: of two replicas racing for an expired lease, the API server lets exactly
one win (409 Conflict for the other).
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import Enum

import urllib3
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from kubensage_common.logsetup import OnceLogger

logger = logging.getLogger(__name__)

CONFLICT = 409
NOT_FOUND = 404
ACQUIRE_JITTER = 0.2  # followers retry at 1..1.2x the period, so they do not race in step


@dataclass(frozen=True)
class LeaseConfig:
    namespace: str
    name: str
    identity: str
    lease_duration: float = 15.0
    renew_deadline: float = 10.0
    retry_period: float = 2.0

    def __post_init__(self) -> None:
        if not 0 < self.retry_period < self.renew_deadline < self.lease_duration:
            raise ValueError(
                "leader election needs retry period < renew deadline < lease duration "
                f"(got {self.retry_period:g} s, {self.renew_deadline:g} s, "
                f"{self.lease_duration:g} s)"
            )

    @property
    def call_timeout(self) -> float:
        """Deadline of one API call: a read and a write both fit in the renew deadline."""
        return self.renew_deadline / 2


class Attempt(Enum):
    HELD = "held"  # this replica holds the lease now
    OTHER = "other"  # another replica holds an unexpired lease, or won a race
    FAILED = "failed"  # the API server did not answer in time or refused


class LeaderElector:
    def __init__(
        self,
        api: client.CoordinationV1Api,
        config: LeaseConfig,
        on_change: Callable[[bool], None] = lambda leader: None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.api = api
        self.config = config
        self.on_change = on_change
        self.clock = clock
        self.errors = 0
        self.transitions = 0
        self._leader = False
        self._observed_version = ""
        self._observed_at = 0.0
        self._last_renew = 0.0
        self._once = OnceLogger(logger)
        self._rng = random.Random()

    @property
    def is_leader(self) -> bool:
        return self._leader

    def run(self, stop: threading.Event) -> None:
        """Try to acquire, then keep renewing, until `stop` is set; then release."""
        while not stop.is_set():
            self.step()
            period = self.config.retry_period
            if not self._leader:
                period *= 1 + self._rng.uniform(0, ACQUIRE_JITTER)
            stop.wait(period)
        self.release()

    def step(self) -> None:
        """One acquire-or-renew attempt and what it means for leadership."""
        attempt = self._attempt()
        now = self.clock()
        if attempt is Attempt.HELD:
            self._last_renew = now
            self._set_leader(True)
        elif attempt is Attempt.OTHER or now - self._last_renew >= self.config.renew_deadline:
            self._set_leader(False)

    def _set_leader(self, leader: bool) -> None:
        if leader == self._leader:
            return
        self._leader = leader
        self.transitions += 1
        logger.info(
            "%s leadership of lease %s/%s as %s",
            "acquired" if leader else "lost",
            self.config.namespace,
            self.config.name,
            self.config.identity,
        )
        self.on_change(leader)

    def _attempt(self) -> Attempt:
        cause = f"lease:{self.config.namespace}/{self.config.name}"
        try:
            result = self._acquire_or_renew()
        except ApiException as exc:
            if exc.status == CONFLICT:
                return Attempt.OTHER
            self.errors += 1
            self._once.problem(cause, f"lease API call refused: {exc.status} {exc.reason}")
            return Attempt.FAILED
        except (urllib3.exceptions.HTTPError, OSError, ValueError) as exc:
            self.errors += 1
            self._once.problem(cause, f"lease API call failed: {exc}")
            return Attempt.FAILED
        self._once.clear(cause)
        return result

    def _spec(self, acquire_time: datetime, transitions: int) -> client.V1LeaseSpec:
        return client.V1LeaseSpec(
            holder_identity=self.config.identity,
            lease_duration_seconds=round(self.config.lease_duration),
            acquire_time=acquire_time,
            renew_time=datetime.now(UTC),
            lease_transitions=transitions,
        )

    def _observe(self, lease: client.V1Lease) -> None:
        version = str(lease.metadata.resource_version or "") if lease.metadata else ""
        if version != self._observed_version:
            self._observed_version = version
            self._observed_at = self.clock()

    def _acquire_or_renew(self) -> Attempt:
        timeout = self.config.call_timeout
        name, namespace = self.config.name, self.config.namespace
        try:
            lease = self.api.read_namespaced_lease(name, namespace, _request_timeout=timeout)
        except ApiException as exc:
            if exc.status != NOT_FOUND:
                raise
            body = client.V1Lease(
                metadata=client.V1ObjectMeta(name=name, namespace=namespace),
                spec=self._spec(datetime.now(UTC), 0),
            )
            self._observe(
                self.api.create_namespaced_lease(namespace, body, _request_timeout=timeout)
            )
            return Attempt.HELD
        self._observe(lease)
        spec = lease.spec or client.V1LeaseSpec()
        holder = spec.holder_identity or ""
        duration = float(spec.lease_duration_seconds or self.config.lease_duration)
        taken = holder and holder != self.config.identity
        if taken and self.clock() - self._observed_at < duration:
            return Attempt.OTHER
        if holder == self.config.identity and spec.acquire_time is not None:
            lease.spec = self._spec(spec.acquire_time, spec.lease_transitions or 0)
        else:
            lease.spec = self._spec(datetime.now(UTC), (spec.lease_transitions or 0) + 1)
        self._observe(
            self.api.replace_namespaced_lease(name, namespace, lease, _request_timeout=timeout)
        )
        return Attempt.HELD

    def release(self) -> None:
        """Hand the lease back on shutdown so a follower need not wait for it to expire."""
        if not self._leader:
            return
        self._set_leader(False)
        timeout = self.config.call_timeout
        try:
            lease = self.api.read_namespaced_lease(
                self.config.name, self.config.namespace, _request_timeout=timeout
            )
            if lease.spec is None or lease.spec.holder_identity != self.config.identity:
                return
            lease.spec.holder_identity = None
            lease.spec.lease_duration_seconds = 1
            lease.spec.renew_time = datetime.now(UTC)
            self.api.replace_namespaced_lease(
                self.config.name, self.config.namespace, lease, _request_timeout=timeout
            )
        except (ApiException, urllib3.exceptions.HTTPError, OSError, ValueError) as exc:
            logger.warning("could not release lease %s: %s", self.config.name, exc)
