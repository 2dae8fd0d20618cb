"""The agent's gRPC client: gRPC's framing and status rules on h2's HTTP/2 state machine.

The agent makes a few unary calls to the runtime per cycle and keeps one stream to the
relay. grpcio's C core, its threads and the pages of its 17 MB extension were ~20 MiB of
the agent's resident memory for that; h2 (pure Python) costs ~1.5 MiB. The relay, the
lab and the tests keep grpcio, so every call here is tested against a real gRPC server.
"""
