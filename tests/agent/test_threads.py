"""Blocking work awaited in daemon threads: results, failures, and work abandoned."""

from __future__ import annotations

import asyncio
import logging
import threading

import pytest

from kubensage_agent.threads import in_daemon_thread
from tests.agent.test_push import wait_for

GATE_SECONDS = 30.0


def test_the_result_and_the_failure_reach_the_awaiting_side() -> None:
    def fails() -> None:
        raise LookupError("nothing there")

    async def scenario() -> int:
        with pytest.raises(LookupError, match="nothing there"):
            await in_daemon_thread(fails, "failing")
        return await in_daemon_thread(lambda: 6 * 7, "answering")

    assert asyncio.run(scenario()) == 42


@pytest.mark.parametrize("level", [logging.WARNING, logging.DEBUG])
def test_work_abandoned_by_its_caller_that_fails_later_is_logged(
    caplog: pytest.LogCaptureFixture, level: int
) -> None:
    """Nobody awaits it any more, so the log is the only place its failure can show, at
    the level its starter chose."""
    started, release = threading.Event(), threading.Event()

    def stuck_then_failing() -> None:
        started.set()
        release.wait(GATE_SECONDS)
        raise OSError("the mount came back broken")

    async def scenario() -> None:
        work = asyncio.ensure_future(
            in_daemon_thread(stuck_then_failing, "collect", late_failure_level=level)
        )
        await wait_for(started.is_set)
        work.cancel()  # what a stop deadline does to a cycle under way
        with pytest.raises(asyncio.CancelledError):
            await work
        release.set()
        await wait_for(lambda: "abandoned" in caplog.text)

    with caplog.at_level(logging.DEBUG, logger="kubensage_agent.threads"):
        asyncio.run(scenario())
    [record] = caplog.records
    assert record.levelno == level
    assert "collect, abandoned, failed afterwards" in record.getMessage()
    assert "the mount came back broken" in record.getMessage()
