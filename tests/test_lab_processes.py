"""The lab's process helpers leave nothing running when a process does not come up."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from kubensage_lab.processes import Service, free_port

# Accepts connections and answers each with an HTTP/2 SETTINGS frame, as a gRPC server on
# the port a test meant for HTTP would: http.client raises BadStatusLine on it.
NOT_HTTP = """
import socket, sys
server = socket.create_server(("127.0.0.1", int(sys.argv[1])))
while True:
    connection, _ = server.accept()
    connection.sendall(bytes.fromhex("000000040000000000"))
    connection.close()
"""


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"


@pytest.mark.parametrize("answer", ["nothing", "not http"])
def test_a_process_that_never_serves_is_stopped_when_the_wait_gives_up(
    tmp_path: Path, answer: str
) -> None:
    port = free_port()
    argv = (
        [sys.executable, "-c", "import time; time.sleep(120)"]
        if answer == "nothing"
        else [sys.executable, "-c", NOT_HTTP, str(port)]
    )
    service = Service("never-ready", argv, tmp_path).start()
    assert service.process is not None
    pid = service.process.pid
    with pytest.raises(RuntimeError, match="not serving"):
        service.wait_http(f"http://127.0.0.1:{port}/healthz", timeout=2)
    assert service.process is None
    assert not alive(pid)
