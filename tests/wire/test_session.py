"""The HTTP/2 session against h2's server side, byte for byte, with no sockets."""

from __future__ import annotations

import h2.config
import h2.connection

from kubensage_agent.wire.messages import frame
from kubensage_agent.wire.session import RECEIVE_WINDOW_BYTES, Session
from kubensage_agent.wire.status import StatusCode


def test_data_for_a_call_it_cancelled_still_reopens_the_connection_window() -> None:
    client = Session("peer", receive_limit=1024)
    server = h2.connection.H2Connection(h2.config.H2Configuration(client_side=False))
    server.initiate_connection()
    server.receive_data(client.output())
    client.receive(server.data_to_send())
    call = client.open("/test.Wire/Unary")
    server.receive_data(client.output())
    server.send_headers(call.stream_id, [(":status", "200"), ("content-type", "application/grpc")])
    body = frame(b"x" * (RECEIVE_WINDOW_BYTES - 1024), compress=False)  # past the 1 KiB limit
    chunk = server.max_outbound_frame_size
    for start in range(0, len(body) - chunk, chunk):
        server.send_data(call.stream_id, body[start : start + chunk])
        client.receive(server.data_to_send())
    assert call.ended and call.error is not None
    assert call.error.code == StatusCode.RESOURCE_EXHAUSTED
    server.receive_data(client.output())  # the RST_STREAM and the WINDOW_UPDATEs
    assert server.outbound_flow_control_window > RECEIVE_WINDOW_BYTES // 2
