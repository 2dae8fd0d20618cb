"""HOST:PORT parsing shared by every listening or dialing flag."""

from __future__ import annotations

import ipaddress

import click


def split_host_port(value: str) -> tuple[str, int]:
    """Split "host:port", "[v6]:port" or ":port" (all interfaces)."""
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise click.BadParameter(f"{value!r} is not HOST:PORT")
    host = host.strip("[]") or "0.0.0.0"
    return host, int(port)


def is_loopback(host: str) -> bool:
    """A flag's host or a peer's address: localhost, 127/8, ::1, an IPv4-mapped loopback
    (a dual-stack socket's IPv4 peer) or a scoped IPv6 loopback."""
    if host == "localhost":
        return True
    try:
        ip = ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_loopback


def join_host_port(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
