"""Local simulators of the provider wire protocols."""
