"""Receiving agent streams."""
