"""kubensage-agent: node and container telemetry from the kernel and the CRI runtime."""

import os

# The agent forks only to exec check scripts. gRPC's fork handlers would run at every fork
# (logging "skipping fork() handlers" when its threads are busy, and disturbing its poller
# in the child); a child that execs at once needs none of them. Read when gRPC starts, so
# it is set before anything imports grpc; an operator's own setting wins.
os.environ.setdefault("GRPC_ENABLE_FORK_SUPPORT", "false")
