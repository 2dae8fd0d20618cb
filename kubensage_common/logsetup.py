"""Logging through the standard library, one line per event: readable text, or JSON for log
pipelines. Configured on the root logger, so grpc's and the Kubernetes client's records come
out in the same format and pass the same level filter as ours.

The standard library rather than a logging package: grpc loads `logging` anyway, and the
agent's resident memory has a budget."""

from __future__ import annotations

import logging
import sys
import threading
import time
from collections import OrderedDict
from pathlib import Path
from typing import Any

FILE_MAX_BYTES = 50 * 1024 * 1024
FILE_BACKUPS = 5
HANDLER_NAME = "kubensage"  # marks the handlers configure_logging owns and replaces

# Attributes every record has; any other attribute came from a call's `extra=`.
_RECORD_ATTRIBUTES = frozenset(vars(logging.makeLogRecord({}))) | {"message", "asctime"}


class UtcFormatter(logging.Formatter):
    """Times as UTC ISO 8601 with milliseconds: 2026-11-22T12:00:00.123Z."""

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:  # noqa: N802 - logging's name
        seconds = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
        return f"{seconds}.{int(record.msecs):03d}Z"


TEXT_FORMAT = "%(asctime)s %(levelname)-7s %(name)s %(message)s"


class JsonFormatter(UtcFormatter):
    """One flat JSON object per record: time, level, logger, message, exception, extras."""

    def __init__(self) -> None:
        super().__init__()
        import json  # noqa: PLC0415 - loaded for this format only

        self._dumps = json.dumps

    def format(self, record: logging.LogRecord) -> str:
        document: dict[str, Any] = {
            "time": self.formatTime(record),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            document["exception"] = self.formatException(record.exc_info)
        for key, value in vars(record).items():
            if key not in _RECORD_ATTRIBUTES:
                document.setdefault(key, value)
        return self._dumps(document, default=str)


def configure_logging(level: str, log_format: str, log_file: str | None) -> None:
    """Send logs to stderr (and optionally an appended, rotated file) in one format."""
    root = logging.getLogger()
    for old in [h for h in root.handlers if h.get_name() == HANDLER_NAME]:
        root.removeHandler(old)
        old.close()
    handlers: list[logging.Handler] = [logging.StreamHandler(sys.stderr)]
    if log_file:
        from logging.handlers import RotatingFileHandler  # noqa: PLC0415 - only with a file

        Path(log_file).parent.mkdir(parents=True, exist_ok=True)
        handlers.append(
            RotatingFileHandler(
                log_file, maxBytes=FILE_MAX_BYTES, backupCount=FILE_BACKUPS, encoding="utf-8"
            )
        )
    formatter = JsonFormatter() if log_format == "json" else UtcFormatter(TEXT_FORMAT)
    for handler in handlers:
        handler.set_name(HANDLER_NAME)
        handler.setFormatter(formatter)
        root.addHandler(handler)
    root.setLevel(level.upper())


# The two rate limiters below log through their user's module logger, so a record names
# the module (filterable like any other) and the line that called them (stacklevel=2).


class OnceLogger:
    """Warn once when a cause appears and once when it clears, instead of every cycle.

    A cause is any stable key ("cri:ListPodSandboxStats", "node:pressure"); the
    message of the first occurrence is logged, repeats are silent until `clear`.
    """

    def __init__(self, logger: logging.Logger) -> None:
        self._logger = logger
        self._active: dict[str, str] = {}
        self._lock = threading.Lock()

    def problem(self, cause: str, message: str) -> None:
        with self._lock:
            if cause in self._active:
                return
            self._active[cause] = message
        self._logger.warning("%s", message, stacklevel=2, extra={"cause": cause})

    def clear(self, cause: str) -> None:
        with self._lock:
            if self._active.pop(cause, None) is None:
                return
        self._logger.info("recovered: %s", cause, stacklevel=2, extra={"cause": cause})

    def active(self) -> dict[str, str]:
        with self._lock:
            return dict(self._active)


class FirstPerKey:
    """One warning per key (a peer, say) per `quiet_seconds`, not one per event: a
    client repeating bad input cannot flood the log. Remembers at most `max_keys`.
    `message` is %-style, formatted with `args` only when the record is emitted."""

    def __init__(
        self, logger: logging.Logger, quiet_seconds: float = 600.0, max_keys: int = 4096
    ) -> None:
        self._logger = logger
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
        self._logger.warning(message, *args, stacklevel=2)
