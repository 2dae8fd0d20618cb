"""The release version: the one place it is set (pyproject.toml reads it from here), so
a program knows its version without reading package metadata at start-up."""

VERSION = "0.1.0"
