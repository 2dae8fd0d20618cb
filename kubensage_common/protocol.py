"""What the relay tells an agent beyond the protobuf messages, shared by both sides."""

from __future__ import annotations

# Trailing metadata of a stream the relay ended because of the report it was reading
# (undecodable or over a limit): the agent drops that report instead of resending it.
REFUSED_REPORT_METADATA = ("kubensage-refused", "report")
