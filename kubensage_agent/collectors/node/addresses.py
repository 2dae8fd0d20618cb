"""The node's IP addresses (getifaddrs(3) in the agent's network namespace), loopback
left out. Called through ctypes: the only other way to list IPv4 addresses with their
interfaces is a netlink dump, and a library for it would cost the agent ~1 MiB."""

from __future__ import annotations

import ctypes
import socket

from kubensage_agent.collectors.node.base import NodeFiles
from kubensage_agent.libc import LIBC, errno_error
from kubensage_api.telemetry import telemetry_pb2 as tm

# where the address sits in struct sockaddr_in and struct sockaddr_in6 (netinet/in.h):
# after sin_family and sin_port; after sin6_family, sin6_port and sin6_flowinfo
ADDRESS_AT = {socket.AF_INET: (4, 4), socket.AF_INET6: (8, 16)}


class _Sockaddr(ctypes.Structure):
    _fields_ = (("family", ctypes.c_ushort),)


class _Ifaddrs(ctypes.Structure):
    """struct ifaddrs (ifaddrs.h), up to the address: the rest is never read."""


_Ifaddrs._fields_ = (
    ("next", ctypes.POINTER(_Ifaddrs)),
    ("name", ctypes.c_char_p),
    ("flags", ctypes.c_uint),
    ("address", ctypes.POINTER(_Sockaddr)),
)

_getifaddrs = LIBC.getifaddrs
_getifaddrs.argtypes = (ctypes.POINTER(ctypes.POINTER(_Ifaddrs)),)
_getifaddrs.restype = ctypes.c_int
_freeifaddrs = LIBC.freeifaddrs
_freeifaddrs.argtypes = (ctypes.POINTER(_Ifaddrs),)
_freeifaddrs.restype = None


def interface_addresses() -> dict[str, list[str]]:
    """IPv4 and IPv6 addresses per interface, in the kernel's order (IPv6 without zone)."""
    head = ctypes.POINTER(_Ifaddrs)()
    if _getifaddrs(ctypes.byref(head)) != 0:
        raise errno_error("getifaddrs")
    found: dict[str, list[str]] = {}
    try:
        entry = head
        while entry:
            item = entry.contents
            if item.address and item.address.contents.family in ADDRESS_AT:
                family = item.address.contents.family
                offset, length = ADDRESS_AT[family]
                raw = ctypes.string_at(ctypes.addressof(item.address.contents) + offset, length)
                name = (item.name or b"").decode(errors="replace")
                found.setdefault(name, []).append(socket.inet_ntop(family, raw))
            entry = item.next
    finally:
        _freeifaddrs(head)
    return found


def collect(files: NodeFiles, node: tm.Node) -> None:
    for name, addresses in sorted(interface_addresses().items()):
        if name != "lo":
            node.addresses.extend(addresses)
