"""The agent's entry point, run before anything that could load Python's `ssl` module.

A plaintext agent never uses ssl (its probes serve plain HTTP), yet asyncio and
http.client import it when it is there, which maps libssl and libcrypto (~4 MiB of RSS
here). Both are written for Python builds without ssl and catch its ImportError, so a
`None` in sys.modules (the import system's documented way to make an import fail) keeps
it out. An agent with TLS to the relay loads it when it builds its TLS context
(kubensage_agent.wire.tls).
"""

from __future__ import annotations

import sys


def main() -> None:
    sys.modules.setdefault("ssl", None)  # type: ignore[arg-type]
    from kubensage_agent.cli import main as cli_main  # noqa: PLC0415 - after the line above

    cli_main()
