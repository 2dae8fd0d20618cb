"""The rule for when a gRPC address may be used without TLS: loopback, or said out loud."""

from __future__ import annotations

import click

from kubensage_common.addresses import is_loopback, split_host_port


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
