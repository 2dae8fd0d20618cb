"""Pieces shared by the agent and the relay: version, logging, CLI configuration."""
