"""Mistakes on the command line are usage errors with the flag named, never tracebacks."""

from __future__ import annotations

import os
import socket
import subprocess
import threading

from kubensage_lab.processes import python_module


def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        python_module("advisor", *args),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={**os.environ, **(env or {})},
    )


def test_bad_values_name_their_flag() -> None:
    url = ("--prometheus-url", "http://127.0.0.1:1")
    for flag, value, words in (
        ("--window", "fortnight", "is not a duration"),
        ("--cpu-limit", "lots", "give none or a multiple"),
        ("--min-memory", "big", "is not a memory quantity"),
        ("--prometheus-header", "no-colon", "is not a header"),
        ("--namespace", "Bad_Name", "is not a Kubernetes namespace name"),
        ("--at", "yesterday", "neither Unix seconds nor an RFC 3339 time"),
    ):
        result = run("recommend", *url, flag, value)
        assert result.returncode == 2, (flag, result.stderr)
        assert words in result.stderr and "Traceback" not in result.stderr, result.stderr


def test_serve_says_when_its_port_is_taken() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        result = run(
            "serve",
            "--prometheus-url",
            "http://127.0.0.1:1",
            "--no-leader-election",
            "--metrics-address",
            f"127.0.0.1:{port}",
        )
    assert result.returncode == 1, result.stderr
    assert f"cannot serve on 127.0.0.1:{port}" in result.stderr
    assert "Traceback" not in result.stderr


def test_leader_election_without_an_api_server_is_a_usage_error() -> None:
    result = run("serve", "--prometheus-url", "http://127.0.0.1:1")
    assert result.returncode == 2
    assert "leader election needs the Kubernetes API" in result.stderr
    inconsistent = run("serve", "--prometheus-url", "http://127.0.0.1:1", "--renew-deadline", "20")
    assert inconsistent.returncode == 2 and "renew deadline < lease duration" in inconsistent.stderr


def test_headers_from_the_environment_are_one_per_line() -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        port = listener.getsockname()[1]
        received: list[bytes] = []

        def answer() -> None:
            connection, _ = listener.accept()
            with connection:
                connection.settimeout(30)
                data = b""
                while b"\r\n\r\n" not in data:
                    data += connection.recv(65536)
                received.append(data)
                connection.sendall(b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n\r\n")

        thread = threading.Thread(target=answer, daemon=True)
        thread.start()
        result = run(
            "recommend",
            "--prometheus-url",
            f"http://127.0.0.1:{port}",
            env={
                "KUBENSAGE_PROMETHEUS_HEADER": "Authorization: Bearer s3cret\nX-Scope-OrgID: team-a"
            },
        )
        thread.join(timeout=30)
    assert result.returncode == 1 and "answered 503" in result.stderr, result.stderr
    assert b"Authorization: Bearer s3cret\r\n" in received[0]
    assert b"X-Scope-OrgID: team-a\r\n" in received[0]
