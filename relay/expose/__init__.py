"""Turning held reports into Prometheus metric families and serving them."""
