"""configure_logging on the standard library's root logger: the text line, the JSON object,
third-party records in the same shape, the level filter, the rotated file, and the two rate
limiters (OnceLogger, FirstPerKey) naming the line that called them."""

from __future__ import annotations

import json
import logging
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from kubensage_common import logsetup
from kubensage_common.logsetup import FirstPerKey, OnceLogger, configure_logging

TEXT_LINE = re.compile(
    r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z (?P<level>[A-Z]+ *) (?P<logger>\S+) (?P<message>.*)"
)


@pytest.fixture(autouse=True)
def root_restored() -> Iterator[None]:
    """configure_logging changes process-wide state: put the root logger back afterwards."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    for handler in root.handlers:
        if handler not in handlers:
            handler.close()
    root.handlers[:] = handlers
    root.setLevel(level)


@pytest.fixture
def far_from_utc(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Local time 5:30 off UTC, so a line in local time cannot pass for UTC."""
    monkeypatch.setenv("TZ", "IST-5:30")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


def stderr_lines(capsys: pytest.CaptureFixture[str]) -> list[str]:
    return capsys.readouterr().err.splitlines()


def test_a_text_line_is_utc_time_level_logger_and_message(
    capsys: pytest.CaptureFixture[str], far_from_utc: None
) -> None:
    configure_logging("info", "text", None)
    log = logging.getLogger("kubensage_agent.report")
    record = log.makeRecord(
        log.name, logging.WARNING, __file__, 1, "sent %d reports to %s", (3, "relay:9000"), None
    )
    record.created = datetime(2026, 11, 22, 12, 0, 0, tzinfo=UTC).timestamp()
    record.msecs = 123.0
    log.handle(record)
    log.info("interval %.1fs", 2.5)
    first, second = stderr_lines(capsys)
    assert (
        first
        == "2026-11-22T12:00:00.123Z WARNING kubensage_agent.report sent 3 reports to relay:9000"
    )
    match = TEXT_LINE.fullmatch(second)
    assert match is not None, second
    assert match["level"] == "INFO   " and match["message"] == "interval 2.5s"


def test_an_exception_is_followed_by_its_traceback(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("info", "text", None)
    try:
        raise ValueError("spool record damaged")
    except ValueError:
        logging.getLogger("kubensage_agent.state.spool").exception("dropped %s", "r1")
    lines = stderr_lines(capsys)
    assert TEXT_LINE.fullmatch(lines[0]) and lines[0].endswith(
        " ERROR   kubensage_agent.state.spool dropped r1"
    )
    assert lines[1] == "Traceback (most recent call last):"
    assert lines[-1] == "ValueError: spool record damaged"


def test_third_party_records_come_out_in_the_same_format(
    capsys: pytest.CaptureFixture[str],
) -> None:
    configure_logging("info", "text", None)
    logging.getLogger("grpc._channel").warning("channel %s closed", "relay:9000")
    (line,) = stderr_lines(capsys)
    match = TEXT_LINE.fullmatch(line)
    assert match is not None, line
    assert (match["level"], match["logger"], match["message"]) == (
        "WARNING",
        "grpc._channel",
        "channel relay:9000 closed",
    )


def test_records_below_the_level_are_dropped_ours_and_third_party(
    capsys: pytest.CaptureFixture[str],
) -> None:
    configure_logging("WARNING", "text", None)
    logging.getLogger("kubensage_agent.push.runner").info("pushing")
    logging.getLogger("urllib3.connectionpool").debug("starting connection")
    logging.getLogger("kubensage_agent.push.runner").warning("stopped with %d unacknowledged", 2)
    (line,) = stderr_lines(capsys)
    assert line.endswith(" kubensage_agent.push.runner stopped with 2 unacknowledged")


def test_json_lines_are_flat_objects_with_the_cause_of_a_once_logger(
    capsys: pytest.CaptureFixture[str],
) -> None:
    configure_logging("info", "json", None)
    once = OnceLogger(logging.getLogger("kubensage_agent.cri.client"))
    once.problem("cri:ListPodSandboxStats", "CRI call failed: 100% of {pods}")
    once.clear("cri:ListPodSandboxStats")
    logging.getLogger("relay.app").info("node %s", "n1", extra={"node": "n1", "attempt": 2})
    try:
        raise OSError("disk full")
    except OSError:
        logging.getLogger("relay.export.diskqueue").exception("queue write failed")
    problem, recovered, extra, failed = (json.loads(line) for line in stderr_lines(capsys))
    assert set(problem) == {"time", "level", "logger", "message", "cause"}
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", problem["time"])
    assert problem["level"] == "WARNING" and problem["logger"] == "kubensage_agent.cri.client"
    assert problem["message"] == "CRI call failed: 100% of {pods}"
    assert problem["cause"] == "cri:ListPodSandboxStats"
    assert (recovered["level"], recovered["message"]) == (
        "INFO",
        "recovered: cri:ListPodSandboxStats",
    )
    assert recovered["cause"] == "cri:ListPodSandboxStats"
    assert extra["message"] == "node n1" and (extra["node"], extra["attempt"]) == ("n1", 2)
    assert failed["message"] == "queue write failed"
    assert failed["exception"].startswith("Traceback") and failed["exception"].endswith(
        "OSError: disk full"
    )
    for document in (problem, recovered, extra, failed):
        assert not any(isinstance(value, dict | list) for value in document.values())


def test_the_log_file_gets_the_same_lines_and_is_rotated_keeping_five(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(logsetup, "FILE_MAX_BYTES", 1000)
    path = tmp_path / "logs" / "agent.log"
    configure_logging("info", "text", str(path))
    log = logging.getLogger("kubensage_agent.push.runner")
    for number in range(200):  # about 80 bytes a line: 16 files' worth
        log.info("report %03d acknowledged", number)
    assert stderr_lines(capsys)[-1].endswith(" report 199 acknowledged")
    files = sorted(p.name for p in path.parent.iterdir())
    assert files == ["agent.log", *(f"agent.log.{n}" for n in range(1, 6))]
    assert all(p.stat().st_size <= 1000 for p in path.parent.iterdir())
    newest = path.read_text().splitlines()
    assert TEXT_LINE.fullmatch(newest[-1]) and newest[-1].endswith(" report 199 acknowledged")
    kept = "".join((path.parent / name).read_text() for name in files)
    assert "report 000 " not in kept  # older files were dropped, not kept forever


def test_configuring_again_replaces_the_handlers_instead_of_adding(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "relay.log"
    configure_logging("info", "text", str(path))
    configure_logging("info", "json", None)
    logging.getLogger("relay.app").info("relay stopping")
    (line,) = stderr_lines(capsys)
    assert json.loads(line)["message"] == "relay stopping"
    assert path.read_text() == ""  # the first call's file handler is gone


def test_json_and_the_file_handler_load_only_when_chosen(tmp_path: Path) -> None:
    """The agent keeps json and logging.handlers out of memory unless its flags ask for them."""
    probe = (
        "import sys\n"
        "from kubensage_common.logsetup import configure_logging\n"
        "configure_logging('info', sys.argv[1], sys.argv[2] or None)\n"
        "print('json' in sys.modules, 'logging.handlers' in sys.modules)\n"
    )

    def loaded(log_format: str, log_file: str) -> str:
        result = subprocess.run(
            [sys.executable, "-c", probe, log_format, log_file],
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
        return result.stdout.strip()

    assert loaded("text", "") == "False False"
    assert loaded("json", "") == "True False"
    assert loaded("text", str(tmp_path / "a.log")) == "False True"


def test_once_logger_warns_once_per_cause_from_the_callers_line(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)
    once = OnceLogger(logging.getLogger("relay.series.rows"))
    for _ in range(3):
        once.problem("node:pressure", "pressure file unreadable")
    assert once.active() == {"node:pressure": "pressure file unreadable"}
    once.clear("node:pressure")
    once.clear("node:pressure")
    assert [(r.levelname, r.getMessage()) for r in caplog.records] == [
        ("WARNING", "pressure file unreadable"),
        ("INFO", "recovered: node:pressure"),
    ]
    assert {(r.name, r.pathname, r.funcName) for r in caplog.records} == {
        (
            "relay.series.rows",
            __file__,
            "test_once_logger_warns_once_per_cause_from_the_callers_line",
        )
    }


def test_first_per_key_formats_its_arguments_once_per_key(
    caplog: pytest.LogCaptureFixture,
) -> None:
    limiter = FirstPerKey(logging.getLogger("relay.ingest.service"), quiet_seconds=600.0)
    for peer in ("10.0.0.1", "10.0.0.1", "10.0.0.2"):
        limiter.report(peer, "refused %s: %r", peer, "bad token")
    assert caplog.messages == ["refused 10.0.0.1: 'bad token'", "refused 10.0.0.2: 'bad token'"]
    assert {(r.name, r.pathname, r.funcName) for r in caplog.records} == {
        ("relay.ingest.service", __file__, "test_first_per_key_formats_its_arguments_once_per_key")
    }
