"""Per-collector error accounting: a failing part costs only its own fields."""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager

from kubensage_common.logsetup import OnceLogger

RECOVERABLE = (OSError, ValueError, KeyError)


class CollectorErrors:
    """Counts failures per collector and logs each cause once until it recovers."""

    def __init__(self, once: OnceLogger | None = None) -> None:
        self.totals: Counter[str] = Counter()
        self.once = once if once is not None else OnceLogger(logging.getLogger(__name__))

    def failure(self, name: str, cause: str, message: str) -> None:
        """Count one failure of collector `name`; log `cause` once until it clears."""
        self.totals[name] += 1
        self.once.problem(cause, message)

    @contextmanager
    def guard(self, name: str) -> Iterator[None]:
        try:
            yield
        except RECOVERABLE as exc:
            self.failure(name, f"collector:{name}", f"collector {name} failed: {exc}")
        else:
            self.once.clear(f"collector:{name}")
