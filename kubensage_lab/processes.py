"""Real processes for end-to-end tests: start with a log file, wait until serving, stop for sure."""

from __future__ import annotations

import base64
import contextlib
import http.client
import json
import re
import signal
import socket
import ssl
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml


def eventually(check: Callable[[], Any], timeout: float = 60.0, every: float = 0.25) -> Any:
    """Poll until `check` returns something truthy and return it; bounded in time."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(every)
    raise AssertionError(f"not true within {timeout}s; last value {last!r}")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def http_get(url: str, timeout: float = 5.0) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def scrape_sample(
    metrics_url: str, name: str, labels: str = "", timeout: float = 5.0
) -> float | None:
    """The value of the sample `name{labels}` (labels as written, braces included, or
    empty) on a /metrics page; None when the page does not answer 200 or has no such line."""
    status, body = http_get(metrics_url, timeout)
    if status != 200:
        return None
    match = re.search(rf"^{re.escape(name)}{re.escape(labels)} (\S+)$", body, re.MULTILINE)
    return float(match.group(1)) if match else None


def http_status(
    url: str,
    *,
    context: ssl.SSLContext | None = None,
    user: str | None = None,
    password: str = "",
) -> int:
    """The status code of a GET, with basic auth when `user` is given; 0 when unreachable."""
    request = urllib.request.Request(url)
    if user is not None:
        token = base64.b64encode(f"{user}:{password}".encode()).decode()
        request.add_header("Authorization", f"Basic {token}")
    try:
        with urllib.request.urlopen(request, context=context, timeout=10) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)
    except (urllib.error.URLError, ConnectionError):
        return 0


class Service:
    def __init__(self, name: str, argv: list[str], log_dir: Path) -> None:
        self.name = name
        self.argv = argv
        self.log_path = log_dir / f"{name}.log"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> Service:
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                self.argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
            )
        return self

    def wait_http(self, url: str, timeout: float = 60.0) -> None:
        """Until `url` answers 200; a process that does not come up is stopped before the
        error is raised, so a caller that never got the started object leaks nothing."""
        try:
            self._wait_http(url, timeout)
        except BaseException:
            self.stop()
            raise

    def _wait_http(self, url: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.process is not None
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.name} exited early:\n{self.log()}")
            # another program on the port answers something else: not serving yet
            with contextlib.suppress(OSError, http.client.HTTPException):
                if http_get(url, timeout=2)[0] == 200:
                    return
            time.sleep(0.2)
        raise RuntimeError(f"{self.name} not serving {url} after {timeout}s:\n{self.log()}")

    def stop(self, sig: signal.Signals = signal.SIGTERM, timeout: float = 20.0) -> int:
        """Signal the process and return its exit code (killing it if it ignores the signal)."""
        if self.process is None:
            return 0
        if self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        code = self.process.returncode
        self.process = None
        return int(code)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


def python_module(module: str, *args: str) -> list[str]:
    return [sys.executable, "-m", module, *args]


def agent_service(
    workdir: Path,
    node: str,
    relay_address: str,
    *extra: str,
    name: str | None = None,
    state_dir: Path | None = None,
    command: list[str] | None = None,
) -> Service:
    """A `kubensage-agent run` process for `node` (the Python module unless `command` names
    another executable, e.g. a built binary); its state dir is its own under `workdir`
    unless `state_dir` is given (one agent restarted keeps its identity and spool there)."""
    name = name or f"agent-{node}"
    return Service(
        name,
        [
            *(command or python_module("kubensage_agent")),
            "run",
            "--relay-address",
            relay_address,
            "--node-name",
            node,
            "--state-dir",
            str(state_dir or workdir / f"{name}-state"),
            *extra,
        ],
        workdir,
    )


class PromQL:
    """The Prometheus query API, which VictoriaMetrics serves as well."""

    port: int

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def query(self, promql: str, at: float | None = None) -> list[dict[str, Any]]:
        params = {"query": promql, **({"time": str(at)} if at is not None else {})}
        status, body = http_get(f"{self.url}/api/v1/query?" + urllib.parse.urlencode(params))
        assert status == 200, body
        return list(json.loads(body)["data"]["result"])

    def query_range(self, promql: str, start: float, end: float, step: float) -> list[Any]:
        params = urllib.parse.urlencode({"query": promql, "start": start, "end": end, "step": step})
        status, body = http_get(f"{self.url}/api/v1/query_range?{params}")
        assert status == 200, body
        return list(json.loads(body)["data"]["result"])


class Prometheus(Service, PromQL):
    """A real Prometheus scraping `targets` as job `job`, plus `other_jobs` (name -> targets),
    or the `scrape_configs` given (a YAML list as text) instead; with `rule_files`, it
    evaluates them every scrape interval."""

    def __init__(
        self,
        log_dir: Path,
        targets: list[str],
        scrape_interval: str = "1s",
        scrape_configs: str | None = None,
        *,
        job: str = "kubensage",
        honor_labels: bool = False,
        other_jobs: Mapping[str, list[str]] | None = None,
        rule_files: Sequence[Path] = (),
    ) -> None:
        self.port = free_port()
        config = log_dir / "prometheus.yml"
        jobs = {job: targets, **(other_jobs or {})}
        scrapes = (
            yaml.safe_load(scrape_configs)
            if scrape_configs is not None
            else [
                {
                    "job_name": name,
                    "honor_labels": honor_labels,
                    "static_configs": [{"targets": addresses}],
                }
                for name, addresses in jobs.items()
            ]
        )
        config.write_text(
            yaml.safe_dump(
                {
                    "global": {
                        "scrape_interval": scrape_interval,
                        "scrape_timeout": scrape_interval,
                        "evaluation_interval": scrape_interval,
                    },
                    "rule_files": [str(path) for path in rule_files],
                    "scrape_configs": scrapes,
                }
            )
        )
        super().__init__(
            "prometheus",
            [
                "prometheus",
                f"--config.file={config}",
                f"--storage.tsdb.path={log_dir / 'tsdb'}",
                f"--web.listen-address=127.0.0.1:{self.port}",
                "--log.level=warn",
            ],
            log_dir,
        )


class RelayProcess:
    """A kubensage-relay process on free loopback ports (the Python module unless
    `command` names another executable, e.g. a built binary)."""

    def __init__(
        self,
        workdir: Path,
        name: str,
        *extra: str,
        command: list[str] | None = None,
        grpc_port: int | None = None,
        metrics_port: int | None = None,
    ) -> None:
        self.grpc = grpc_port or free_port()
        self.http = metrics_port or free_port()
        self.service = Service(
            name,
            [
                *(command or python_module("relay")),
                "serve",
                "--listen-address",
                f"127.0.0.1:{self.grpc}",
                "--metrics-address",
                f"127.0.0.1:{self.http}",
                *extra,
            ],
            workdir,
        )

    def start(self) -> RelayProcess:
        self.service.start().wait_http(f"http://127.0.0.1:{self.http}/healthz")
        return self

    def stop(self) -> int:
        return self.service.stop()

    def __enter__(self) -> RelayProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def pid(self) -> int:
        assert self.service.process is not None
        return self.service.process.pid

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.grpc}"

    @property
    def metrics_url(self) -> str:
        return f"http://127.0.0.1:{self.http}/metrics"


def memory_kib(pid: int) -> dict[str, int]:
    """VmRSS (now) and VmHWM (peak) of a process, from /proc."""
    figures = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            figures[key] = int(value.split()[0])
    return figures
