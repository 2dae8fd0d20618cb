"""Real remote-write receivers for tests and the benchmark: VictoriaMetrics and Prometheus."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from kubensage_lab.processes import Prometheus, PromQL, Service, free_port, http_get


class VictoriaMetrics(Service, PromQL):
    """Single-node VictoriaMetrics (Debian `victoria-metrics`) that answers queries at once."""

    def __init__(self, workdir: Path, name: str = "victoria-metrics") -> None:
        self.port = free_port()
        super().__init__(
            name,
            [
                "victoria-metrics",
                f"-httpListenAddr=127.0.0.1:{self.port}",
                f"-storageDataPath={workdir / name}",
                "-retentionPeriod=100y",
                "-search.latencyOffset=0s",  # by default the newest 30 s are not queryable
                "-search.disableCache",
                "-loggerLevel=ERROR",
            ],
            workdir,
        )

    @property
    def write_url(self) -> str:
        return f"{self.url}/api/v1/write"

    def query(self, promql: str, at: float | None = None) -> list[dict[str, Any]]:
        # samples just written sit in an in-memory buffer for up to a few seconds
        status, body = http_get(f"{self.url}/internal/force_flush")
        assert status == 200, body
        return super().query(promql, at)

    def start_serving(self) -> VictoriaMetrics:
        self.start().wait_http(f"{self.url}/health")
        return self

    @staticmethod
    def present() -> bool:
        return shutil.which("victoria-metrics") is not None


class PrometheusReceiver(Prometheus):
    """Prometheus taking remote write, with an out-of-order window for late samples."""

    def __init__(self, workdir: Path) -> None:
        folder = workdir / "prometheus-receiver"
        folder.mkdir(parents=True, exist_ok=True)
        super().__init__(folder, targets=[])
        self.log_path = workdir / "prometheus-receiver.log"
        config = folder / "prometheus.yml"
        config.write_text(
            config.read_text() + "storage:\n  tsdb:\n    out_of_order_time_window: 30m\n"
        )
        self.argv.append("--web.enable-remote-write-receiver")

    @property
    def write_url(self) -> str:
        return f"{self.url}/api/v1/write"

    def start_serving(self) -> PrometheusReceiver:
        self.start().wait_http(f"{self.url}/-/ready")
        return self

    @staticmethod
    def present() -> bool:
        return shutil.which("prometheus") is not None
