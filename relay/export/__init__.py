"""Remote write: a report's samples, at their collection time, to Prometheus remote-write receivers."""
