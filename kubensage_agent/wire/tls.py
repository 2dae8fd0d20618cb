"""TLS to the relay with Python's ssl module, loaded only when TLS is configured.

The agent's entry keeps `ssl` out of a plaintext agent (libssl and libcrypto are ~4 MiB of
resident memory, and asyncio would import them for nothing). asyncio has then bound its
own `ssl` name to None, so the TLS here runs over an `ssl.SSLObject` on a plain asyncio
connection instead of asyncio's TLS transport.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from types import ModuleType
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import ssl


def ssl_module() -> ModuleType:
    """`ssl`, imported even when the entry point kept it out of a plaintext agent."""
    if "ssl" in sys.modules and sys.modules["ssl"] is None:
        del sys.modules["ssl"]
    import ssl  # noqa: PLC0415 - only TLS agents pay for it

    return ssl


@dataclass(frozen=True)
class ClientTls:
    """How the agent checks the relay (a CA file, else the system's roots) and, for
    mutual TLS, the certificate it presents; `server_name` overrides the name checked."""

    ca_file: str | None = None
    cert_file: str | None = None
    key_file: str | None = None
    server_name: str | None = None

    def context(self) -> ssl.SSLContext:
        """A client context; raises OSError (ssl.SSLError included) for unusable files."""
        library = ssl_module()
        context: ssl.SSLContext = library.create_default_context(cafile=self.ca_file)
        context.minimum_version = library.TLSVersion.TLSv1_2
        context.set_alpn_protocols(["h2"])  # gRPC servers refuse connections without it
        if self.cert_file or self.key_file:
            context.load_cert_chain(self.cert_file or "", self.key_file)
        return context
