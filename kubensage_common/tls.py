"""The relay's gRPC TLS credentials from PEM files, read again when they change."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import grpc

logger = logging.getLogger(__name__)


def _read(path: str | None) -> bytes | None:
    return Path(path).read_bytes() if path else None


def file_signature(path: str | Path) -> tuple[int, int, int]:
    """Changes whenever a file is rewritten or replaced (as a mounted Secret is)."""
    stat = os.stat(path)
    return (stat.st_mtime_ns, stat.st_size, stat.st_ino)


class _CertificateFiles:
    """The server's certificate, key and client CA, read again when any of them changes."""

    def __init__(self, cert_file: str, key_file: str, client_ca_file: str | None) -> None:
        self.paths = [p for p in (cert_file, key_file, client_ca_file) if p]
        self.cert_file, self.key_file, self.client_ca_file = cert_file, key_file, client_ca_file
        self.signatures = self._signatures()
        self.initial = self._configuration()

    def _signatures(self) -> list[tuple[int, int, int]]:
        return [file_signature(p) for p in self.paths]

    def _configuration(self) -> grpc.ServerCertificateConfiguration:
        return grpc.ssl_server_certificate_configuration(
            [(Path(self.key_file).read_bytes(), Path(self.cert_file).read_bytes())],
            root_certificates=_read(self.client_ca_file),
        )

    def fetch(self) -> grpc.ServerCertificateConfiguration | None:
        """Called by gRPC before every handshake: a new configuration, or None for no change."""
        try:
            signatures = self._signatures()
            if signatures == self.signatures:
                return None
            configuration = self._configuration()
        except OSError as exc:  # mid-rotation: keep serving what was read before
            logger.warning("TLS files unreadable, keeping the ones read before: %s", exc)
            return None
        self.signatures = signatures
        logger.info("TLS certificate or client CA changed; new connections use the new files")
        return configuration


def server_credentials(
    cert_file: str, key_file: str, client_ca_file: str | None
) -> grpc.ServerCredentials:
    """TLS for the relay; with a client CA, agents must present a certificate it signed.

    The files are read again when they change, for every new connection: a renewed
    certificate or a rotated client CA needs no restart."""
    files = _CertificateFiles(cert_file, key_file, client_ca_file)
    return grpc.dynamic_ssl_server_credentials(
        files.initial,
        files.fetch,  # type: ignore[arg-type]  # None means "no change" (grpc's documentation)
        require_client_authentication=client_ca_file is not None,
    )
