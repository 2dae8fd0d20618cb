"""kubensage-agent: node and container telemetry from the kernel and the CRI runtime."""
