"""Logging through loguru: readable on a terminal, JSON for log pipelines, one line per event."""

from __future__ import annotations

import sys
import threading
import time
from collections import OrderedDict
from pathlib import Path

from loguru import logger

HUMAN_FORMAT = (
    "<green>{time:YYYY-MM-DDTHH:mm:ss.SSSZ}</green> <level>{level: <7}</level> "
    "<cyan>{name}</cyan> {message}"
)
FILE_ROTATION = "50 MB"
FILE_RETENTION = 5


def configure_logging(level: str, log_format: str, log_file: str | None) -> None:
    """Send logs to stderr (and optionally an appended, rotated file) in one format."""
    logger.remove()
    serialize = log_format == "json"
    colorize = not serialize and sys.stderr.isatty()
    logger.add(
        sys.stderr,
        level=level.upper(),
        format=HUMAN_FORMAT if not serialize else "{message}",
        serialize=serialize,
        colorize=colorize,
        backtrace=False,
        diagnose=False,
    )
    if log_file:
        Path(log_file).parent.mkdir(parents=True, exist_ok=True)
        logger.add(
            log_file,
            level=level.upper(),
            format=HUMAN_FORMAT if not serialize else "{message}",
            serialize=serialize,
            colorize=False,
            rotation=FILE_ROTATION,
            retention=FILE_RETENTION,
            mode="a",
            enqueue=False,
            backtrace=False,
            diagnose=False,
        )


class OnceLogger:
    """Warn once when a cause appears and once when it clears, instead of every cycle.

    A cause is any stable key ("cri:ListPodSandboxStats", "node:pressure"); the
    message of the first occurrence is logged, repeats are silent until `clear`.
    """

    def __init__(self) -> None:
        self._active: dict[str, str] = {}
        self._lock = threading.Lock()

    def problem(self, cause: str, message: str) -> None:
        with self._lock:
            if cause in self._active:
                return
            self._active[cause] = message
        logger.opt(depth=1).bind(cause=cause).warning("{}", message)

    def clear(self, cause: str) -> None:
        with self._lock:
            if self._active.pop(cause, None) is None:
                return
        logger.opt(depth=1).bind(cause=cause).info("recovered: {}", cause)

    def active(self) -> dict[str, str]:
        with self._lock:
            return dict(self._active)


class FirstPerKey:
    """One warning per key (a peer, say) per `quiet_seconds`, not one per event: a
    client repeating bad input cannot flood the log. Remembers at most `max_keys`."""

    def __init__(self, quiet_seconds: float = 600.0, max_keys: int = 4096) -> None:
        self.quiet_seconds = quiet_seconds
        self.max_keys = max_keys
        self._logged: OrderedDict[str, float] = OrderedDict()
        self._lock = threading.Lock()

    def report(self, key: str, message: str, *args: object) -> None:
        now = time.monotonic()
        with self._lock:
            last = self._logged.get(key)
            if last is not None and now - last < self.quiet_seconds:
                return
            self._logged[key] = now
            self._logged.move_to_end(key)
            while len(self._logged) > self.max_keys:
                self._logged.popitem(last=False)
        logger.opt(depth=1).warning(message, *args)
