"""Kubernetes metadata the nodes cannot know: workload owners, requests, zones."""
