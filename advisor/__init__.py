"""kubensage-advisor: CPU and memory recommendations per workload container, from the
relay's series in Prometheus."""
