"""kubensage's monitoring mixin: alerts, recording rules and Grafana dashboards for its
native metric names, written once here and rendered to plain files in deploy/monitoring/
by `make monitoring` (no jsonnet toolchain needed to use them)."""
