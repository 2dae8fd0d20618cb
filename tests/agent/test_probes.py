"""The agent's DaemonSet probes: live while the loop turns, ready once a report was acked."""

from __future__ import annotations

import urllib.request

from kubensage_agent.push.probes import probe_app
from kubensage_common.httpserver import HttpServer


def status(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)


def test_probes_follow_liveness_and_readiness() -> None:
    state = {"live": True, "ready": False}
    server = HttpServer("127.0.0.1", 0, probe_app(lambda: state["live"], lambda: state["ready"]))
    server.start()
    base = f"http://127.0.0.1:{server.port}"
    try:
        assert (status(f"{base}/livez"), status(f"{base}/healthz")) == (200, 200)
        assert status(f"{base}/readyz") == 503
        state["ready"], state["live"] = True, False
        assert (status(f"{base}/readyz"), status(f"{base}/livez")) == (200, 503)
        assert status(f"{base}/metrics") == 404
    finally:
        server.stop()
