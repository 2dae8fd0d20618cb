"""Node check scripts (Nagios exit-code convention): found in a directory, run sandboxed on
their own schedule, their newest results copied into every report."""
