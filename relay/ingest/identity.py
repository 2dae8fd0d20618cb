"""What a hello and a report must say about who sent them."""

from __future__ import annotations

import re

from kubensage_api.telemetry import telemetry_pb2 as tm

# A Kubernetes node name is a DNS-1123 subdomain.
MAX_NODE_NAME_BYTES = 253
NODE_NAME = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
# Agent ids are UUIDs, or names an operator provisioned ("node-0042").
AGENT_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,127}")


def hello_problem(hello: tm.Hello) -> str | None:
    """Why a hello is refused, or None when it is acceptable."""
    if not AGENT_ID.fullmatch(hello.agent_id):
        return "agent_id must be 1-128 characters of letters, digits and . _ : -"
    if len(hello.node_name) > MAX_NODE_NAME_BYTES or not NODE_NAME.fullmatch(hello.node_name):
        return (
            f"node_name {hello.node_name[:64]!r} is not a valid Kubernetes node name "
            "(lowercase DNS subdomain, at most 253 characters)"
        )
    return None


def report_problem(report: tm.Metrics, hello: tm.Hello) -> str | None:
    """The reason a report cannot be stored, or None when it can."""
    if report.agent_id != hello.agent_id or report.node.name != hello.node_name:
        return "identity_mismatch"
    if report.sequence == 0:
        return "invalid"
    return None
