"""kubensage-relay: ingest agent reports, keep the latest per node, expose them to Prometheus."""
