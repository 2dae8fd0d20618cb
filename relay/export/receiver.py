"""One remote-write receiver: its URL, credentials and TLS, and the HTTP request it takes.

Protocol headers are those of remote write 1.0. Credential files (a bearer token, a
basic-auth password) are read at every request, so a rotated secret is picked up
without a restart. Credentials in the URL (https://user:password@host/...) are basic
auth; the URL shown in logs and labels never carries them.
"""

from __future__ import annotations

import base64
import hashlib
import http.client
import re
import ssl
import urllib.parse
from dataclasses import dataclass
from pathlib import Path

from kubensage_common.version import VERSION

USER_AGENT = f"kubensage-relay/{VERSION}"
PROTOCOL_HEADERS = {
    "Content-Encoding": "snappy",
    "Content-Type": "application/x-protobuf",
    "User-Agent": USER_AGENT,
    "X-Prometheus-Remote-Write-Version": "0.1.0",
}
LABEL_NAME = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")


@dataclass(frozen=True)
class Receiver:
    url: str
    timeout_seconds: float = 30.0
    bearer_token_file: str | None = None
    basic_auth_username: str | None = None
    basic_auth_password_file: str | None = None
    tls_ca_file: str | None = None
    tls_cert_file: str | None = None
    tls_key_file: str | None = None
    tls_server_name: str | None = None

    def validate(self) -> None:
        """Raise ValueError naming what is wrong, before anything is started."""
        parts = urllib.parse.urlsplit(self.url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"remote-write URL {self.display} must be http(s)://host[:port]/path")
        try:
            parts.port  # noqa: B018 - parsing the port raises on a bad one
        except ValueError as exc:
            raise ValueError(f"remote-write URL {self.display}: {exc}") from exc
        if self.bearer_token_file and (self.basic_auth_username or parts.username):
            raise ValueError(f"{self.display}: bearer token and basic auth exclude each other")
        if bool(self.tls_cert_file) != bool(self.tls_key_file):
            raise ValueError(f"{self.display}: TLS client certificate and key go together")
        for path in (
            self.bearer_token_file,
            self.basic_auth_password_file,
            self.tls_ca_file,
            self.tls_cert_file,
            self.tls_key_file,
        ):
            if path and not Path(path).is_file():
                raise ValueError(f"{self.display}: {path} is not a readable file")
        if parts.scheme == "http" and (self.tls_ca_file or self.tls_cert_file):
            raise ValueError(f"{self.display}: TLS files given for a plain http:// URL")
        if self.timeout_seconds <= 0:
            raise ValueError("the remote-write timeout must be positive")

    @property
    def display(self) -> str:
        """The URL without credentials or query, for logs and the `url` label."""
        parts = urllib.parse.urlsplit(self.url)
        host = parts.hostname or ""
        if ":" in host:
            host = f"[{host}]"
        try:
            port = f":{parts.port}" if parts.port else ""
        except ValueError:
            port = ""
        return f"{parts.scheme}://{host}{port}{parts.path}"

    @property
    def key(self) -> str:
        """A stable name for this receiver's queue directory."""
        parts = urllib.parse.urlsplit(self.url)
        digest = hashlib.sha256(self.display.encode()).hexdigest()[:12]
        host = re.sub(r"[^a-zA-Z0-9.-]", "_", parts.hostname or "receiver")[:64]
        return f"{host}-{digest}"

    def _tls(self) -> ssl.SSLContext:
        context = ssl.create_default_context(cafile=self.tls_ca_file)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        if self.tls_cert_file and self.tls_key_file:
            context.load_cert_chain(self.tls_cert_file, self.tls_key_file)
        return context

    def connection(self) -> http.client.HTTPConnection:
        parts = urllib.parse.urlsplit(self.url)
        host = parts.hostname or ""
        if parts.scheme == "https":
            if self.tls_server_name:
                return _NamedHttps(
                    host, parts.port, self.tls_server_name, self.timeout_seconds, self._tls()
                )
            return http.client.HTTPSConnection(
                host, parts.port, timeout=self.timeout_seconds, context=self._tls()
            )
        return http.client.HTTPConnection(host, parts.port, timeout=self.timeout_seconds)

    @property
    def path(self) -> str:
        parts = urllib.parse.urlsplit(self.url)
        return (parts.path or "/") + (f"?{parts.query}" if parts.query else "")

    def headers(self, body_length: int) -> dict[str, str]:
        headers = {**PROTOCOL_HEADERS, "Content-Length": str(body_length)}
        authorization = self._authorization()
        if authorization:
            headers["Authorization"] = authorization
        return headers

    def _authorization(self) -> str | None:
        if self.bearer_token_file:
            return f"Bearer {Path(self.bearer_token_file).read_text().strip()}"
        parts = urllib.parse.urlsplit(self.url)
        user = self.basic_auth_username or urllib.parse.unquote(parts.username or "")
        if not user:
            return None
        if self.basic_auth_password_file:
            password = Path(self.basic_auth_password_file).read_text().strip()
        else:
            password = urllib.parse.unquote(parts.password or "")
        token = base64.b64encode(f"{user}:{password}".encode()).decode()
        return f"Basic {token}"


class _NamedHttps(http.client.HTTPSConnection):
    """HTTPS to one address, checking the certificate for another name (SNI included)."""

    def __init__(
        self, host: str, port: int | None, name: str, timeout: float, context: ssl.SSLContext
    ) -> None:
        super().__init__(host, port, timeout=timeout, context=context)
        self._name = name
        self._context = context

    def connect(self) -> None:
        http.client.HTTPConnection.connect(self)
        self.sock = self._context.wrap_socket(self.sock, server_hostname=self._name)


def parse_external_labels(values: tuple[str, ...] | list[str]) -> dict[str, str]:
    """`name=value` pairs; names must be valid, not reserved (`__*`), and not repeated."""
    labels: dict[str, str] = {}
    for item in values:
        name, sep, value = item.partition("=")
        if not sep or not LABEL_NAME.match(name) or name.startswith("__"):
            raise ValueError(f"external label {item!r} is not NAME=VALUE with a valid name")
        if name in labels:
            raise ValueError(f"external label {name!r} given twice")
        if not value:
            raise ValueError(f"external label {name!r} has an empty value")
        labels[name] = value
    return labels
