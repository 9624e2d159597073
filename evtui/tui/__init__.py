"""The Textual app: a client of the engine's public API."""
