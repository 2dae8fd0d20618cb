"""A container's cgroup on the host: where it is, and what its interface files say."""
