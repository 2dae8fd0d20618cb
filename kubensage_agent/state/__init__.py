"""What the agent keeps across restarts: identity, sequence numbers, spooled reports."""
