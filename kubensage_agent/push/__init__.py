"""Getting reports from the agent to a relay: queue, stream, run loop."""
