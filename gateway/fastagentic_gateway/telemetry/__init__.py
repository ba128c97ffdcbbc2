"""Telemetry: Prometheus metrics (``metrics``)."""
