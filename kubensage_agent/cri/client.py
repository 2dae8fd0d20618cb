"""A CRI client where every call has a deadline and a dead runtime is reconnected to by itself."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from google.protobuf.message import DecodeError

from kubensage_agent.wire.status import RpcError, StatusCode
from kubensage_agent.wire.unary import UnaryChannel
from kubensage_api.cri import api_pb2

MAX_MESSAGE_BYTES = 64 * 1024 * 1024
V1ALPHA2_VERSION = "/runtime.v1alpha2.RuntimeService/Version"
# Status look-ups in flight at once: the first cycle after start asks one per pod and
# container, and waiting for each answer in turn would make its wall time their sum.
MAX_IN_FLIGHT = 32
# Codes after which the connection itself is suspect: rebuild it before the next call.
RECONNECT_CODES = frozenset({StatusCode.UNAVAILABLE, StatusCode.UNKNOWN})


def _methods() -> dict[str, tuple[str, Any]]:
    """Each RuntimeService and ImageService method: its HTTP/2 path and reply type."""
    methods = {}
    for service in api_pb2.DESCRIPTOR.services_by_name.values():
        for method in service.methods:
            reply = getattr(api_pb2, method.output_type.name)
            methods[method.name] = (f"/{service.full_name}/{method.name}", reply)
    return methods


METHODS = _methods()


class CriError(Exception):
    """A CRI call failed; `code` is the gRPC status code when there was one."""

    def __init__(self, method: str, message: str, code: StatusCode | None = None) -> None:
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
        self._channel: UnaryChannel | None = None

    def _connection(self) -> UnaryChannel:
        if self._channel is None:
            self._channel = UnaryChannel(self.endpoint, MAX_MESSAGE_BYTES)
        return self._channel

    def close(self) -> None:
        if self._channel is not None:
            self._channel.close()
        self._channel = None

    def call(self, method: str, request: Any, deadline: float | None = None) -> Any:
        """Call a RuntimeService/ImageService method within the per-call timeout and `deadline`.

        `deadline` is a time.monotonic() instant shared by all calls of one cycle, so a
        hung runtime costs at most one timeout per cycle, not one per call.
        """
        timeout = self._timeout(method, deadline)
        path, reply = METHODS[method]
        answer = self._connection().call_many(
            path, [request.SerializeToString()], timeout, in_flight=1
        )[0]
        if isinstance(answer, RpcError):
            raise self._failed(method, answer)
        return self._decoded(method, reply, answer)

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
        path, reply = METHODS[method]
        payloads = [r.SerializeToString() for r in requests]
        answers: list[Any] = []
        for answer in self._connection().call_many(path, payloads, timeout, MAX_IN_FLIGHT):
            if isinstance(answer, RpcError):
                answers.append(self._failed(method, answer, reconnect=False))
                continue
            try:
                answers.append(self._decoded(method, reply, answer))
            except CriError as exc:
                answers.append(exc)
        if any(isinstance(a, CriError) and a.code in RECONNECT_CODES for a in answers):
            self.close()  # only once every call is answered
        return answers

    def _timeout(self, method: str, deadline: float | None) -> float:
        timeout = self.timeout
        if deadline is not None:
            timeout = min(timeout, deadline - time.monotonic())
            if timeout <= 0:
                raise CriError(
                    method, "cycle deadline already passed", StatusCode.DEADLINE_EXCEEDED
                )
        return timeout

    @staticmethod
    def _decoded(method: str, reply: Any, answer: bytes) -> Any:
        try:
            return reply.FromString(answer)
        except DecodeError as exc:
            raise CriError(method, f"undecodable reply: {exc}", StatusCode.INTERNAL) from exc

    def _failed(self, method: str, exc: RpcError, *, reconnect: bool = True) -> CriError:
        """The call's error; with `reconnect`, the channel is closed first when the code
        makes the connection suspect."""
        if reconnect and exc.code in RECONNECT_CODES:
            self.close()
        return CriError(method, f"{exc.code.name}: {exc.details}", exc.code)

    def version(self) -> api_pb2.VersionResponse:
        try:
            response: api_pb2.VersionResponse = self.call(
                "Version", api_pb2.VersionRequest(version="v1")
            )
            return response
        except CriError as exc:
            if exc.code == StatusCode.UNIMPLEMENTED and self._speaks_v1alpha2():
                raise CriVersionError(
                    "Version",
                    "runtime only speaks CRI runtime.v1alpha2; kubensage needs runtime.v1 "
                    "(containerd >= 1.6, CRI-O >= 1.20, cri-dockerd >= 0.2.6)",
                    exc.code,
                ) from exc
            raise

    def _speaks_v1alpha2(self) -> bool:
        request = api_pb2.VersionRequest(version="v1alpha2").SerializeToString()
        answer = self._connection().call_many(V1ALPHA2_VERSION, [request], self.timeout, 1)[0]
        return not isinstance(answer, RpcError)
