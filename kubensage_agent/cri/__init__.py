"""Talking to the container runtime over CRI runtime.v1."""
