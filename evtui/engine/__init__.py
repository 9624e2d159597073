"""Dispatcher, router, limiter, retries, cost and telemetry."""
