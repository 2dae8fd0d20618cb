"""Pure parsers, one per kernel file; each raises ValueError on content it cannot trust."""
