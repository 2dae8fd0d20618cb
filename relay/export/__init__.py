"""Remote write: each report's samples, at their collection time, to TSDB receivers."""
