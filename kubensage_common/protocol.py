"""What the relay tells an agent beyond the protobuf messages, shared by both sides."""

from __future__ import annotations

# Trailing metadata of a stream the relay ended because of the report it was reading
# (undecodable or over a limit): the agent drops that report instead of resending it.
REFUSED_REPORT_METADATA = ("kubensage-refused", "report")

# The largest agent message, decoded, by default on both sides: a 110-container report
# with every field is ~150 KiB, ~600 KiB when every pod carries 4 KiB of annotations.
DEFAULT_MAX_MESSAGE_BYTES = 1024 * 1024
