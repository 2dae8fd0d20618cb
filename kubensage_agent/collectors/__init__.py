"""Collectors turn host files and CRI answers into the report's protobuf messages."""
