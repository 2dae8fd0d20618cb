"""`kubensage-advisor serve`: recompute on a schedule while leader, serve the results.

Three threads: the elector keeps (or waits for) the lease, the recommender computes
when this replica leads and a run is due, and the HTTP server answers /metrics,
/healthz and /readyz. A failed run keeps the previous recommendations, marked stale,
and is retried sooner than the regular interval.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kubernetes import client
from prometheus_client import CollectorRegistry, make_wsgi_app

from advisor.exporter import AdvisorMetrics, LeadershipHealth, RecommendationCollector
from advisor.lease import LeaderElector, LeaseConfig
from advisor.prometheus import PrometheusClient, PrometheusError
from advisor.report import Report, Request, build_report
from kubensage_common.addresses import join_host_port, split_host_port
from kubensage_common.httpserver import HttpServer, StartResponse, WsgiApp, plain
from kubensage_common.logsetup import OnceLogger

logger = logging.getLogger(__name__)

FAILURE_RETRY_SECONDS = 30.0
SERVICE_ACCOUNT_NAMESPACE = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")


def default_identity() -> str:
    """The pod name (a pod's hostname) plus a random part, as client-go does."""
    return f"{socket.gethostname()}_{uuid.uuid4().hex[:8]}"


def default_lease_namespace() -> str:
    try:
        return SERVICE_ACCOUNT_NAMESPACE.read_text().strip() or "default"
    except OSError:
        return "default"


class SoleReplica:
    """Leadership without election (--no-leader-election): always the leader."""

    is_leader = True
    transitions = 0
    errors = 0

    def run(self, stop: threading.Event) -> None:
        stop.wait()


class Recommender:
    def __init__(
        self,
        prometheus: PrometheusClient,
        request: Request,
        metrics: AdvisorMetrics,
        interval_seconds: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.prometheus = prometheus
        self.request = request
        self.metrics = metrics
        self.interval_seconds = interval_seconds
        self.clock = clock
        self.latest: Report | None = None
        self._last_attempt: float | None = None
        self._last_failed = False
        self._once = OnceLogger(logger)
        self.wake = threading.Event()

    def due(self) -> bool:
        if self._last_attempt is None:
            return True
        wait = self.interval_seconds
        if self._last_failed:
            wait = min(wait, FAILURE_RETRY_SECONDS)
        return self.clock() - self._last_attempt >= wait

    def lead_again(self) -> None:
        """A replica that just became leader computes at once: what it held may be old."""
        self._last_attempt = None
        self.wake.set()

    def run_once(self) -> bool:
        self._last_attempt = self.clock()
        started = time.perf_counter()
        failed_query = ""

        def note(name: str) -> None:
            nonlocal failed_query
            failed_query = name

        try:
            report = build_report(self.prometheus, self.request, time.time(), note)
        except PrometheusError as exc:
            self._last_failed = True
            self.metrics.query_errors.labels(exc.reason).inc()
            self.metrics.runs.labels("failure").inc()
            self.metrics.stale.set(1 if self.latest is not None else 0)
            self._once.problem(
                "prometheus",
                f"recommendations not updated ({failed_query} query): {exc}"
                + ("; serving the previous ones, marked stale" if self.latest else ""),
            )
            return False
        self._once.clear("prometheus")
        self._last_failed = False
        self.latest = report
        self.metrics.runs.labels("success").inc()
        self.metrics.stale.set(0)
        self.metrics.last_success.set(report.at)
        self.metrics.containers.set(len(report.rows))
        self.metrics.run_seconds.set(time.perf_counter() - started)
        logger.info(
            "recommendations for %s containers computed in %.1f s",
            len(report.rows),
            time.perf_counter() - started,
        )
        return True

    def loop(self, stop: threading.Event, is_leader: Callable[[], bool]) -> None:
        while not stop.is_set():
            if is_leader() and self.due():
                self.run_once()
            self.wake.wait(1.0)
            self.wake.clear()


def make_app(registry: CollectorRegistry) -> WsgiApp:
    metrics = make_wsgi_app(registry)

    def app(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        if path == "/metrics":
            body: Iterable[bytes] = metrics(environ, start_response)
            return body
        if path == "/healthz":
            return plain(start_response, "200 OK", b"ok\n")
        if path == "/readyz":
            # leader or follower alike: a follower is ready to take over
            return plain(start_response, "200 OK", b"ready\n")
        return plain(start_response, "404 Not Found", b"see /metrics, /healthz, /readyz\n")

    return app


@dataclass(frozen=True)
class ServeConfig:
    request: Request
    interval_seconds: float
    metrics_address: str
    lease: LeaseConfig | None  # None: no election, this is the only replica


def serve(config: ServeConfig, prometheus: PrometheusClient, api: client.ApiClient | None) -> None:
    """Run until SIGTERM or SIGINT; the lease is released on the way out."""
    registry = CollectorRegistry(auto_describe=True)
    metrics = AdvisorMetrics(registry)
    recommender = Recommender(prometheus, config.request, metrics, config.interval_seconds)
    elector: LeaderElector | SoleReplica
    if config.lease is None or api is None:
        elector = SoleReplica()
    else:
        elector = LeaderElector(
            client.CoordinationV1Api(api),
            config.lease,
            on_change=lambda leader: recommender.lead_again() if leader else None,
        )
    registry.register(LeadershipHealth(elector))
    registry.register(
        RecommendationCollector(lambda: recommender.latest, lambda: elector.is_leader)
    )
    host, port = split_host_port(config.metrics_address)
    http = HttpServer(host, port, make_app(registry))
    http.start()
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    threads = [
        threading.Thread(target=elector.run, args=(stop,), name="elector", daemon=True),
        threading.Thread(
            target=recommender.loop,
            args=(stop, lambda: elector.is_leader),
            name="recommender",
            daemon=True,
        ),
    ]
    for thread in threads:
        thread.start()
    logger.info(
        "advisor serving on http://%s/metrics, %s (pid %s)",
        join_host_port(host, http.port),
        "leader election off"
        if config.lease is None
        else f"lease {config.lease.namespace}/{config.lease.name} as {config.lease.identity}",
        os.getpid(),
    )
    while not stop.is_set():
        stop.wait(1.0)
    logger.info("advisor stopping")
    recommender.wake.set()
    for thread in threads:
        thread.join(timeout=config.lease.renew_deadline if config.lease else 5.0)
    http.stop()
