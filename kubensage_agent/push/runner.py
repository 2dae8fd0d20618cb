"""`kubensage-agent run`: collect on a steady clock, push every report, flush on SIGTERM."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kubensage_agent.heap import release_free_memory
from kubensage_agent.push.queue import ReportQueue
from kubensage_agent.push.stream import CLOSE_TIMEOUT_SECONDS, StreamSender
from kubensage_agent.report import ReportBuilder
from kubensage_agent.state.identity import SequenceAllocator
from kubensage_agent.state.spool import Spool
from kubensage_agent.threads import in_daemon_thread
from kubensage_agent.wire.tls import ClientTls
from kubensage_api.telemetry import telemetry_pb2 as tm
from kubensage_common.addresses import split_host_port
from kubensage_common.protocol import DEFAULT_MAX_MESSAGE_BYTES
from kubensage_common.version import VERSION

if TYPE_CHECKING:
    from kubensage_agent.push.status import StatusPage

logger = logging.getLogger(__name__)

MIN_INTERVAL_SECONDS = 0.2


@dataclass(frozen=True)
class RunConfig:
    relay_address: str
    interval_seconds: float = 10.0
    queue_size: int = 360
    flush_timeout_seconds: float = 5.0
    max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES
    health_address: str = ""
    state_dir: Path | None = None
    spool_max_bytes: int = 0
    spool_max_age_seconds: float = 3600.0
    tls: ClientTls | None = None
    token_file: Path | None = None
    status_remote: bool = False


def next_tick(previous: float, interval: float, now: float) -> float:
    """The next instant on the grid previous + k*interval strictly after `now`.

    Ticks a slow cycle overran are skipped, never run back to back.
    """
    if now < previous + interval:
        return previous + interval
    missed = int((now - previous) // interval)
    return previous + (missed + 1) * interval


async def _first_set(events: Iterable[asyncio.Event], timeout: float) -> None:
    """Return once any of `events` is set, or after `timeout` seconds."""
    waiters = [asyncio.ensure_future(event.wait()) for event in events]
    try:
        await asyncio.wait(waiters, timeout=max(timeout, 0), return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in waiters:
            waiter.cancel()


async def _let_finish(
    work: asyncio.Future[None], seconds: float, *, left: str, failed: str
) -> None:
    """Give work under way at stop `seconds` to finish, then go on with the stop whatever
    became of it: what was still running is logged as `left`, a failure as `failed`."""
    done, _ = await asyncio.wait({work}, timeout=max(seconds, 0))
    if not done:
        logger.warning(left)
    work.cancel()
    try:
        await work
    except asyncio.CancelledError:
        pass
    except Exception:  # the stop goes on
        logger.exception(failed)


class AgentRunner:
    def __init__(self, builder: ReportBuilder, config: RunConfig) -> None:
        self.builder = builder
        self.config = config
        self.interval = config.interval_seconds
        spool = None
        if config.spool_max_bytes > 0 and config.state_dir is not None:
            spool = Spool(
                config.state_dir / "spool", config.spool_max_bytes, config.spool_max_age_seconds
            )
        self.queue = ReportQueue(config.queue_size, spool)
        if len(self.queue):
            logger.info("%s unacknowledged reports recovered from the spool", len(self.queue))
        self.sequences = SequenceAllocator(
            config.state_dir / "sequence" if config.state_dir is not None else None,
            floor=self.queue.highest_sequence,
        )
        self.oversize_dropped = 0
        self.last_turn = time.monotonic()
        self._interval_changed = asyncio.Event()
        self.status: StatusPage | None = None  # only with --health-address
        self.sender = StreamSender(
            config.relay_address,
            self._hello,
            self.queue,
            self.apply_settings,
            config.max_message_bytes,
            tls=config.tls,
            token_file=config.token_file,
        )

    def _hello(self) -> tm.Hello:
        runtime = self.builder.runtime.info if self.builder.runtime is not None else None
        return tm.Hello(
            agent_id=self.builder.agent_id,
            node_name=self.builder.node.node_name,
            agent_version=VERSION,
            runtime=runtime,
            last_sequence=self.sequences.last,
        )

    def apply_settings(self, settings: tm.Settings) -> None:
        wanted = settings.interval_seconds
        if wanted >= MIN_INTERVAL_SECONDS and wanted != self.interval:
            logger.info("relay set the collection interval to %ss (was %ss)", wanted, self.interval)
            self.interval = wanted
            self._interval_changed.set()
        checks = self.builder.checks
        if checks is not None and (settings.checks or settings.checks_replace):
            checks.apply_overrides(settings.checks, settings.checks_replace)

    def _status_figures(self) -> dict[str, Any]:
        """The agent's own state for /status, read from what the loop keeps anyway."""
        spool, sender = self.queue.spool, self.sender
        return {
            "agent_id": self.builder.agent_id,
            "node": self.builder.node.node_name,
            "version": VERSION,
            "interval_seconds": self.interval,
            "queue": {
                "depth": len(self.queue),
                "capacity": self.queue.capacity,
                "dropped_reports_total": self.queue.dropped_total + self.oversize_dropped,
            },
            "spool": {
                "enabled": spool is not None,
                "bytes": spool.bytes_held if spool is not None else 0,
                "corrupt_records_total": spool.corrupt_total if spool is not None else 0,
            },
            "relay": {
                "address": self.config.relay_address,
                "connected": sender.connected_since is not None,
                "connected_since_unix": sender.connected_since,
                "last_ack_unix": sender.last_ack_unix,
                "last_ack_sequence": sender.highest_acked,
                "reconnects_total": sender.reconnects_total,
                "last_problem": sender.last_problem,
            },
            "checks": (
                {"running": checks.running(), "errors_total": checks.errors_total}
                if (checks := self.builder.checks) is not None
                else None
            ),
        }

    def live(self) -> bool:
        allowance = 3 * self.interval + self.builder.cri_timeout
        return time.monotonic() - self.last_turn < allowance

    def _cycle(self) -> None:
        sender_health = self.builder.sender
        sender_health.queue_depth = len(self.queue)
        sender_health.dropped_reports_total = (
            self.queue.dropped_total + self.oversize_dropped + self.sender.refused_total
        )
        sender_health.reconnects_total = self.sender.reconnects_total
        sender_health.interval_seconds = self.interval
        spool = self.queue.spool
        if spool is not None:
            sender_health.spool_corrupt_records_total = spool.corrupt_total
            sender_health.spooled_bytes = spool.bytes_held
        try:
            self._queue_report(self.builder.build(self.sequences.next()))
        finally:
            release_free_memory()  # what the cycle allocated and dropped, whatever its outcome

    def _queue_report(self, report: tm.Metrics) -> None:
        if self.status is not None:
            self.status.remember(report)
        size = report.ByteSize()
        if size > self.config.max_message_bytes:
            self.oversize_dropped += 1
            self.builder.errors.once.problem(
                "push:oversize",
                f"report of {size} bytes exceeds --max-message-bytes "
                f"{self.config.max_message_bytes}; dropped",
            )
            return
        self.builder.errors.once.clear("push:oversize")
        self.queue.put(report)

    async def collect_loop(self, stop: asyncio.Event) -> None:
        """One cycle per tick until `stop`; a cycle under way then still queues its report."""
        loop = asyncio.get_running_loop()
        tick = loop.time()
        while not stop.is_set():
            await in_daemon_thread(self._cycle, "collect")
            self.last_turn = time.monotonic()
            tick = next_tick(tick, self.interval, loop.time())
            self._interval_changed.clear()
            await _first_set((self._interval_changed, stop), tick - loop.time())
            if self._interval_changed.is_set():
                tick = loop.time()

    def _start_stopping_checks(self) -> asyncio.Future[None] | None:
        """Stop the checks alongside the flush: no report will carry their results once
        the last cycle is built, and killing the running ones takes time."""
        checks = self.builder.checks
        if checks is None:
            return None
        return asyncio.ensure_future(in_daemon_thread(checks.stop, "checks-stop"))

    async def run(self) -> int:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        return await self.serve(stop)

    async def serve(self, stop: asyncio.Event) -> int:
        """Collect and push until `stop` is set, then flush and end the stream cleanly.

        The whole stop (the cycle under way, then the flush with the checks' stop
        alongside) shares one `--flush-timeout`; the stream's close and, when still under
        way, the checks' stop get at most CLOSE_TIMEOUT_SECONDS more each, so the agent
        exits well inside a pod's termination grace period."""
        probes = None
        if self.config.health_address:
            # the HTTP server, JSON and TLS modules load only when probes are on
            from kubensage_agent.push.probes import probe_app  # noqa: PLC0415
            from kubensage_agent.push.status import StatusPage, status_app  # noqa: PLC0415
            from kubensage_common.httpserver import HttpServer  # noqa: PLC0415

            self.status = StatusPage(self._status_figures)
            host, port = split_host_port(self.config.health_address)
            pages = {"/status": status_app(self.status, self.config.status_remote)}
            probes = HttpServer(
                host, port, probe_app(self.live, lambda: self.sender.acked_any, pages)
            )
            probes.start()
            logger.info("probes on http://%s:%s/livez, /readyz and /status", host, probes.port)
        if self.builder.checks is not None:
            self.builder.checks.start()
        logger.info("pushing to %s every %ss", self.config.relay_address, self.interval)
        sender_task = asyncio.create_task(self.sender.run())
        collect_task = asyncio.create_task(self.collect_loop(stop))
        stopped = asyncio.create_task(stop.wait())
        await asyncio.wait({stopped, collect_task}, return_when=asyncio.FIRST_COMPLETED)
        stopped.cancel()
        if not stop.is_set() and collect_task.done() and not collect_task.cancelled():
            collect_task.result()  # a bug in collection must not look like a clean stop
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.config.flush_timeout_seconds
        # the cycle under way builds a report that is flushed too
        await _let_finish(
            collect_task,
            deadline - loop.time(),
            left="a collection cycle still under way was abandoned at stop",
            failed="the last collection cycle failed at stop",
        )
        stopping_checks = self._start_stopping_checks()
        logger.info("stopping: flushing %s queued reports", len(self.queue))
        flushed = await self.sender.flush_and_close(max(deadline - loop.time(), 0))
        if stopping_checks is not None:
            await _let_finish(
                stopping_checks,
                max(deadline - loop.time(), CLOSE_TIMEOUT_SECONDS),
                left="the checks had not stopped at the stop deadline; left behind",
                failed="stopping the checks failed",
            )
        sender_task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await sender_task
        if probes is not None:
            probes.stop()
        if self.builder.runtime is not None:
            self.builder.runtime.close()
        if flushed:
            logger.info("stopped; every report was acknowledged")
        else:
            logger.warning("stopped with %s reports unacknowledged", len(self.queue))
        return 0
