"""gRPC TLS credentials from PEM files, and the rule for when plaintext is allowed."""

from __future__ import annotations

from pathlib import Path

import click
import grpc

from kubensage_common.addresses import is_loopback, split_host_port


def _read(path: str | None) -> bytes | None:
    return Path(path).read_bytes() if path else None


def server_credentials(
    cert_file: str, key_file: str, client_ca_file: str | None
) -> grpc.ServerCredentials:
    """TLS for the relay; with a client CA, agents must present a certificate it signed."""
    return grpc.ssl_server_credentials(
        [(Path(key_file).read_bytes(), Path(cert_file).read_bytes())],
        root_certificates=_read(client_ca_file),
        require_client_auth=client_ca_file is not None,
    )


def channel_credentials(
    ca_file: str | None, cert_file: str | None, key_file: str | None
) -> grpc.ChannelCredentials:
    """TLS for the agent: verify the relay (system roots without a CA file), maybe mutual."""
    return grpc.ssl_channel_credentials(
        root_certificates=_read(ca_file),
        private_key=_read(key_file),
        certificate_chain=_read(cert_file),
    )


def require_secure_or_explicit(address: str, tls: bool, insecure: bool, what: str) -> bool:
    """Refuse plaintext off loopback unless --insecure was given; True means "warn"."""
    if tls:
        return False
    host, _ = split_host_port(address)
    if is_loopback(host):
        return False
    if not insecure:
        raise click.UsageError(
            f"{what} {address} is not loopback: configure TLS (--tls-* flags) or pass "
            "--insecure to accept plaintext"
        )
    return True
