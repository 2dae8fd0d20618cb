"""Client certificates: the certificate must name the node (a DNS SAN or the CN).

gRPC checks the chain at the handshake against the client CA read at that moment.
This mode then binds the certificate to node names and, at every reload, checks it
again against the current client CA file, its expiry and an optional CRL, so a
certificate revoked (or a CA withdrawn) ends the streams already open with it.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.x509.oid import NameOID

from kubensage_common.tls import file_signature
from relay.ingest.auth import AuthRefusedError, Grant, NodeScope, Peer

logger = logging.getLogger(__name__)


def certificate_names(certificate: x509.Certificate) -> frozenset[str]:
    """The DNS subject alternative names and the common name."""
    names = {
        str(attribute.value)
        for attribute in certificate.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    }
    try:
        extension = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    except x509.ExtensionNotFound:
        return frozenset(names)
    return frozenset(names | set(extension.value.get_values_for_type(x509.DNSName)))


def _issued_by(certificate: x509.Certificate, authority: x509.Certificate) -> bool:
    try:
        certificate.verify_directly_issued_by(authority)
    except (InvalidSignature, ValueError, TypeError):  # another issuer, key type or signature
        return False
    return True


class _Watched:
    """A PEM file parsed again when it changes; a bad new version keeps the old one."""

    def __init__(self, path: Path, what: str) -> None:
        self.path = path
        self.what = what
        self.signature: tuple[int, int, int] | None = None

    def changed(self) -> bytes | None:
        try:
            signature = file_signature(self.path)
            if signature == self.signature:
                return None
            data = self.path.read_bytes()
        except OSError as exc:
            logger.warning(
                "%s %s unreadable, keeping what was read before: %s", self.what, self.path, exc
            )
            return None
        self.signature = signature
        return data


class ClientCertificates:
    mode = "mtls"

    def __init__(self, client_ca_file: Path, crl_file: Path | None = None) -> None:
        self._lock = threading.Lock()
        self._ca_file = _Watched(client_ca_file, "client CA")
        self._crl_file = _Watched(crl_file, "CRL") if crl_file is not None else None
        self._authorities: list[x509.Certificate] = []
        self._crls: list[x509.CertificateRevocationList] = []
        self.reload()
        if not self._authorities:
            raise ValueError(f"client CA file {client_ca_file} holds no certificate")

    def describe(self) -> str:
        crl = f", CRL {self._crl_file.path}" if self._crl_file else ""
        return f"client certificates from {self._ca_file.path}{crl}, node = DNS SAN or CN"

    def reload(self) -> None:
        with self._lock:
            data = self._ca_file.changed()
            if data is not None:
                try:
                    self._authorities = x509.load_pem_x509_certificates(data)
                except ValueError as exc:
                    logger.warning(
                        "client CA %s unparsable, keeping the old: %s", self._ca_file.path, exc
                    )
            if self._crl_file is not None:
                data = self._crl_file.changed()
                if data is not None:
                    try:
                        self._crls = [x509.load_pem_x509_crl(data)]
                    except ValueError as exc:
                        logger.warning(
                            "CRL %s unparsable, keeping the old: %s", self._crl_file.path, exc
                        )

    def _revoked(self, certificate: x509.Certificate) -> bool:
        return any(
            crl.issuer == certificate.issuer
            and crl.get_revoked_certificate_by_serial_number(certificate.serial_number) is not None
            for crl in self._crls
        )

    async def authenticate(self, peer: Peer) -> Grant:
        if peer.certificate_pem is None:
            raise AuthRefusedError("no_certificate", "no client certificate")
        certificate = x509.load_pem_x509_certificate(peer.certificate_pem)
        self.reload()
        if not any(_issued_by(certificate, ca) for ca in self._authorities):
            raise AuthRefusedError(
                "untrusted_certificate", "certificate not signed by the client CA"
            )
        if certificate.not_valid_after_utc < dt.datetime.now(dt.UTC):
            raise AuthRefusedError("expired_certificate", "client certificate expired")
        if self._revoked(certificate):
            raise AuthRefusedError("revoked_certificate", "client certificate revoked")
        return Grant(
            f"certificate {certificate.subject.rfc4514_string()}",
            NodeScope(names=certificate_names(certificate)),
        )
