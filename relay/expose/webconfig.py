"""TLS and basic auth for /metrics, read from a web config file in the format of
Prometheus' exporter-toolkit, so the same file works for both:

    tls_server_config:
      cert_file: /etc/kubensage/tls.crt
      key_file: /etc/kubensage/tls.key
    basic_auth_users:
      prometheus: $2y$10$...   # bcrypt hash

/healthz and /readyz stay open so that kubelet probes need no credentials.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import ssl
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import bcrypt
import yaml

OPEN_PATHS = frozenset({"/healthz", "/readyz"})


@dataclass(frozen=True)
class WebConfig:
    cert_file: str | None = None
    key_file: str | None = None
    users: dict[str, str] = field(default_factory=dict)

    def ssl_context(self) -> ssl.SSLContext | None:
        if not self.cert_file:
            return None
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        context.load_cert_chain(self.cert_file, self.key_file)
        return context


def load_web_config(path: str) -> WebConfig:
    data = yaml.safe_load(Path(path).read_text()) or {}
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a mapping")
    unknown = set(data) - {"tls_server_config", "basic_auth_users"}
    if unknown:
        raise ValueError(f"{path}: unknown keys {sorted(unknown)}")
    tls = data.get("tls_server_config") or {}
    users = {str(k): str(v) for k, v in (data.get("basic_auth_users") or {}).items()}
    if bool(tls.get("cert_file")) != bool(tls.get("key_file")):
        raise ValueError(f"{path}: tls_server_config needs both cert_file and key_file")
    return WebConfig(tls.get("cert_file"), tls.get("key_file"), users)


class BasicAuth:
    """Checks credentials against bcrypt hashes; a verified pair is remembered (as a
    SHA-256 digest) because bcrypt is deliberately slow and Prometheus asks every scrape."""

    def __init__(self, users: dict[str, str]) -> None:
        self.users = users
        self._verified: set[bytes] = set()
        self._lock = threading.Lock()

    def allows(self, header: str | None) -> bool:
        if not header or not header.startswith("Basic "):
            return False
        try:
            user, _, password = base64.b64decode(header[6:], validate=True).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            return False
        hashed = self.users.get(user)
        if hashed is None:
            return False
        key = hashlib.sha256(f"{user}\0{password}\0{hashed}".encode()).digest()
        with self._lock:
            if key in self._verified:
                return True
        if not bcrypt.checkpw(password.encode(), hashed.encode()):
            return False
        with self._lock:
            self._verified.add(key)
        return True


def protect(app: Callable[..., Iterable[bytes]], auth: BasicAuth) -> Callable[..., Iterable[bytes]]:
    def guarded(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        if environ.get("PATH_INFO", "") in OPEN_PATHS or auth.allows(
            environ.get("HTTP_AUTHORIZATION")
        ):
            return app(environ, start_response)
        start_response(
            "401 Unauthorized",
            [("Content-Type", "text/plain"), ("WWW-Authenticate", 'Basic realm="kubensage"')],
        )
        return [b"unauthorized\n"]

    return guarded
