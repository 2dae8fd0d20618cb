"""`make bench`: speed and memory of the agent and relay next to their anchors."""
