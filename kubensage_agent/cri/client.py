"""A CRI client where every call has a deadline and a dead runtime is reconnected to by itself."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import grpc

from kubensage_api.cri import api_pb2, api_pb2_grpc

MAX_MESSAGE_BYTES = 64 * 1024 * 1024
V1ALPHA2_VERSION = "/runtime.v1alpha2.RuntimeService/Version"
CHANNEL_OPTIONS = [
    ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
    ("grpc.initial_reconnect_backoff_ms", 200),
    ("grpc.min_reconnect_backoff_ms", 200),
    ("grpc.max_reconnect_backoff_ms", 2000),
    ("grpc.enable_retries", 0),
]
# Status look-ups in flight at once: the first cycle after start asks one per pod and
# container, and waiting for each answer in turn would make its wall time their sum.
MAX_IN_FLIGHT = 32
# Codes after which the connection itself is suspect: rebuild it before the next call.
RECONNECT_CODES = frozenset({grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.UNKNOWN})


class CriError(Exception):
    """A CRI call failed; `code` is the gRPC status code when there was one."""

    def __init__(self, method: str, message: str, code: grpc.StatusCode | None = None) -> None:
        super().__init__(f"{method}: {message}")
        self.method = method
        self.code = code


class CriVersionError(CriError):
    """The runtime answers, but not the runtime.v1 API kubensage speaks."""


def normalize_endpoint(endpoint: str) -> str:
    """Accept `unix:///path`, `unix:/path` or a bare path; return a gRPC target."""
    if endpoint.startswith("unix://"):
        return endpoint
    if endpoint.startswith("unix:"):
        return "unix://" + endpoint[len("unix:") :]
    if endpoint.startswith("/"):
        return "unix://" + endpoint
    return endpoint


class CriClient:
    def __init__(self, endpoint: str, timeout: float) -> None:
        self.endpoint = normalize_endpoint(endpoint)
        self.timeout = timeout
        self._channel: grpc.Channel | None = None
        self._runtime: api_pb2_grpc.RuntimeServiceStub | None = None
        self._images: api_pb2_grpc.ImageServiceStub | None = None

    def _connect(self) -> tuple[api_pb2_grpc.RuntimeServiceStub, api_pb2_grpc.ImageServiceStub]:
        if self._channel is None or self._runtime is None or self._images is None:
            self._channel = grpc.insecure_channel(self.endpoint, options=CHANNEL_OPTIONS)
            self._runtime = api_pb2_grpc.RuntimeServiceStub(self._channel)
            self._images = api_pb2_grpc.ImageServiceStub(self._channel)
        return self._runtime, self._images

    def close(self) -> None:
        if self._channel is not None:
            self._channel.close()
        self._channel = self._runtime = self._images = None

    def call(self, method: str, request: Any, deadline: float | None = None) -> Any:
        """Call a RuntimeService/ImageService method within the per-call timeout and `deadline`.

        `deadline` is a time.monotonic() instant shared by all calls of one cycle, so a
        hung runtime costs at most one timeout per cycle, not one per call.
        """
        timeout = self._timeout(method, deadline)
        try:
            return self._stub(method)(request, timeout=timeout)
        except grpc.RpcError as exc:
            raise self._failed(method, exc) from exc

    def call_all(
        self, method: str, requests: Sequence[Any], deadline: float | None = None
    ) -> list[Any]:
        """`method` once per request, up to MAX_IN_FLIGHT at once, within one timeout and
        `deadline`: each answer, or the CriError that call ended with."""
        if not requests:
            return []
        try:
            timeout = self._timeout(method, deadline)
        except CriError as exc:
            return [exc] * len(requests)
        stub = self._stub(method)
        answers: list[Any] = []
        for start in range(0, len(requests), MAX_IN_FLIGHT):
            batch = [
                stub.future(r, timeout=timeout) for r in requests[start : start + MAX_IN_FLIGHT]
            ]
            for future in batch:
                try:
                    answers.append(future.result())
                except grpc.RpcError as exc:
                    answers.append(self._failed(method, exc, reconnect=False))
        if any(isinstance(a, CriError) and a.code in RECONNECT_CODES for a in answers):
            self.close()  # only once every call is answered: closing cancels those in flight
        return answers

    def _timeout(self, method: str, deadline: float | None) -> float:
        timeout = self.timeout
        if deadline is not None:
            timeout = min(timeout, deadline - time.monotonic())
            if timeout <= 0:
                raise CriError(
                    method, "cycle deadline already passed", grpc.StatusCode.DEADLINE_EXCEEDED
                )
        return timeout

    def _stub(self, method: str) -> Any:
        runtime, images = self._connect()
        return getattr(images if method == "ImageFsInfo" else runtime, method)

    def _failed(self, method: str, exc: grpc.RpcError, *, reconnect: bool = True) -> CriError:
        """The call's error; with `reconnect`, the channel is closed first when the code
        makes the connection suspect."""
        code = exc.code()
        if reconnect and code in RECONNECT_CODES:
            self.close()
        return CriError(method, f"{code.name}: {exc.details()}", code)

    def version(self) -> api_pb2.VersionResponse:
        try:
            response: api_pb2.VersionResponse = self.call(
                "Version", api_pb2.VersionRequest(version="v1")
            )
            return response
        except CriError as exc:
            if exc.code == grpc.StatusCode.UNIMPLEMENTED and self._speaks_v1alpha2():
                raise CriVersionError(
                    "Version",
                    "runtime only speaks CRI runtime.v1alpha2; kubensage needs runtime.v1 "
                    "(containerd >= 1.6, CRI-O >= 1.20, cri-dockerd >= 0.2.6)",
                    exc.code,
                ) from exc
            raise

    def _speaks_v1alpha2(self) -> bool:
        self._connect()
        assert self._channel is not None
        probe = self._channel.unary_unary(
            V1ALPHA2_VERSION,
            request_serializer=api_pb2.VersionRequest.SerializeToString,
            response_deserializer=api_pb2.VersionResponse.FromString,
        )
        try:
            probe(api_pb2.VersionRequest(version="v1alpha2"), timeout=self.timeout)
        except grpc.RpcError:
            return False
        return True
