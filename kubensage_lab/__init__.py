"""A private containerd with kubelet-style pods on one machine: what the integration tests
and `make demo` run kubensage against (no registry, no kubelet, no CNI needed)."""
