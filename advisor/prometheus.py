"""Instant queries over the Prometheus HTTP API, each with a deadline and a size bound.

Prometheus 2.x has no per-query series limit, so the bound is ours: the response is read
in chunks under one deadline, refused past a byte budget, and refused when it holds more
series than allowed. Every failure becomes a PrometheusError whose message says what
happened and where, and whose `reason` is a short word for counters.
"""

from __future__ import annotations

import http.client
import json
import socket
import time
import urllib.parse
from dataclasses import dataclass

MAX_LABEL_VALUE_CHARS = 1024  # the relay's own default cut; label values never grow past it
BYTES_PER_SERIES = 4096  # generous for a vector sample with the relay's six labels
_CHUNK = 64 * 1024
REASONS = ("unreachable", "timeout", "http_error", "bad_response", "query_error", "too_many_series")


def _settimeout(sock: socket.socket | None, deadline: float) -> None:
    """Each blocking read may take only what is left of the whole query's deadline."""
    remaining = deadline - time.monotonic()
    if remaining <= 0:
        raise TimeoutError
    if sock is not None:
        sock.settimeout(remaining)


class PrometheusError(Exception):
    def __init__(self, message: str, reason: str) -> None:
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True)
class Sample:
    labels: dict[str, str]
    value: float


class PrometheusClient:
    def __init__(
        self,
        url: str,
        *,
        timeout_seconds: float = 60.0,
        max_series: int = 20_000,
        headers: dict[str, str] | None = None,
    ) -> None:
        parsed = urllib.parse.urlparse(url)
        if parsed.scheme not in ("http", "https") or not parsed.netloc:
            raise ValueError(f"{url!r} is not an http(s) URL of a Prometheus server")
        self.url = url.rstrip("/")
        secure = parsed.scheme == "https"
        self._connection_class = (
            http.client.HTTPSConnection if secure else http.client.HTTPConnection
        )
        self._host = parsed.hostname or ""
        self._port = parsed.port or (443 if secure else 80)
        self._path = parsed.path.rstrip("/")
        self.timeout_seconds = timeout_seconds
        self.max_series = max_series
        self.headers = headers or {}

    def query(self, promql: str, at: float) -> list[Sample]:
        """One instant query evaluated at `at` (Unix seconds); a vector result as samples."""
        form = urllib.parse.urlencode(
            {"query": promql, "time": f"{at:.3f}", "timeout": f"{self.timeout_seconds:g}s"}
        ).encode()
        status, reason, body = self._post(f"{self._path}/api/v1/query", form)
        if status != 200:
            raise self._http_error(status, reason, body)
        return self._parse(body)

    def _post(self, path: str, form: bytes) -> tuple[int, str, bytes]:
        """(status, reason, body) of one POST, all of it within the deadline."""
        deadline = time.monotonic() + self.timeout_seconds
        connection = self._connection_class(self._host, self._port, timeout=self.timeout_seconds)
        try:
            connection.connect()
            sock = connection.sock
            headers = {"Content-Type": "application/x-www-form-urlencoded", **self.headers}
            connection.request("POST", path, body=form, headers=headers)
            _settimeout(sock, deadline)
            response = connection.getresponse()
            return response.status, response.reason, self._read_bounded(response, sock, deadline)
        except TimeoutError:
            raise PrometheusError(
                f"Prometheus at {self.url} did not answer within {self.timeout_seconds:g} s "
                "(raise --query-timeout, or narrow with --namespace)",
                "timeout",
            ) from None
        except (OSError, http.client.HTTPException) as exc:
            raise PrometheusError(
                f"cannot reach Prometheus at {self.url}: {exc or type(exc).__name__}",
                "unreachable",
            ) from None
        finally:
            connection.close()

    def _read_bounded(
        self, response: http.client.HTTPResponse, sock: socket.socket, deadline: float
    ) -> bytes:
        budget = self.max_series * BYTES_PER_SERIES + _CHUNK
        chunks: list[bytes] = []
        size = 0
        while True:
            _settimeout(sock, deadline)
            chunk = response.read1(_CHUNK)
            if not chunk:
                return b"".join(chunks)
            size += len(chunk)
            if size > budget:
                raise PrometheusError(
                    f"Prometheus answer exceeds {budget} bytes, more than {self.max_series} "
                    "series can need (raise --max-series, or narrow with --namespace)",
                    "too_many_series",
                )
            chunks.append(chunk)

    def _http_error(self, status: int, reason: str, body: bytes) -> PrometheusError:
        detail = body[:4096].decode(errors="replace")
        kind = "http_error"
        try:
            payload = json.loads(detail)
            detail = f"{payload.get('errorType', 'error')}: {payload.get('error', '')}"
            kind = "query_error" if status in (400, 422) else "http_error"
        except (ValueError, AttributeError):
            detail = " ".join(detail.split())[:200]
        return PrometheusError(
            f"Prometheus at {self.url} answered {status} {reason}"
            + (f": {detail}" if detail else ""),
            kind,
        )

    def _parse(self, body: bytes) -> list[Sample]:
        try:
            payload = json.loads(body)
            status = payload["status"]
            data = payload.get("data") or {}
        except (ValueError, KeyError, TypeError):
            raise PrometheusError(
                f"{self.url} did not answer as the Prometheus HTTP API does "
                f"(first bytes: {body[:80]!r})",
                "bad_response",
            ) from None
        if status != "success":
            raise PrometheusError(
                f"Prometheus at {self.url} refused the query: "
                f"{payload.get('errorType', 'error')}: {payload.get('error', '')}",
                "query_error",
            )
        if data.get("resultType") != "vector":
            raise PrometheusError(
                f"Prometheus at {self.url} answered a {data.get('resultType')!r}, not a vector",
                "bad_response",
            )
        result = data.get("result") or []
        if len(result) > self.max_series:
            raise PrometheusError(
                f"a query matched {len(result)} series, more than --max-series "
                f"{self.max_series} (raise it, or narrow with --namespace)",
                "too_many_series",
            )
        samples = []
        for item in result:
            try:
                labels = {str(k): str(v)[:MAX_LABEL_VALUE_CHARS] for k, v in item["metric"].items()}
                samples.append(Sample(labels, float(item["value"][1])))
            except (KeyError, IndexError, TypeError, ValueError):
                raise PrometheusError(
                    f"Prometheus at {self.url} sent a malformed sample: {str(item)[:200]}",
                    "bad_response",
                ) from None
        return samples
