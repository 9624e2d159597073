"""Job directories, resumable state and outputs."""
