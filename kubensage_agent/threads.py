"""Blocking work awaited from the loop in threads that cannot hold the agent's exit."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import Callable
from typing import TypeVar

logger = logging.getLogger(__name__)

T = TypeVar("T")


async def in_daemon_thread(
    function: Callable[[], T], name: str, *, late_failure_level: int = logging.WARNING
) -> T:
    """`function()` in a thread of its own, awaited on the loop.

    Unlike `asyncio.to_thread` and the loop's own name lookups, whose pool threads are
    joined when the loop and then the interpreter shut down, a daemon thread abandoned
    at stop (a cycle stuck on a hung mount, a lookup on a dead DNS server) cannot hold
    the process past its stop deadline. Should the abandoned work fail later, while the
    loop still runs, its failure is logged at `late_failure_level`, since nobody awaits
    it any more."""
    loop = asyncio.get_running_loop()
    outcome: asyncio.Future[T] = loop.create_future()

    def settle(result: T | None, error: BaseException | None) -> None:
        if outcome.done():  # the awaiting side gave up
            if error is not None:
                logger.log(late_failure_level, "%s, abandoned, failed afterwards: %r", name, error)
            return
        if error is not None:
            outcome.set_exception(error)
        else:
            outcome.set_result(result)  # type: ignore[arg-type]

    def target() -> None:
        result, error = None, None
        try:
            result = function()
        except BaseException as exc:  # handed to the awaiting side
            error = exc
        with contextlib.suppress(RuntimeError):  # the loop already closed: nobody waits
            loop.call_soon_threadsafe(settle, result, error)

    threading.Thread(target=target, name=name, daemon=True).start()
    return await outcome
