"""Prometheus metrics, on a registry owned by the app (no process-global state)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

__all__ = ["Metrics"]


class Metrics:
    """The counters and timings ``/metrics`` exposes."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.inbound = Counter("oc_inbound_events", "Accepted inbound events.", ["platform", "type"], registry=r)
        self.turns = Counter("oc_turns", "Finished turns.", ["platform", "outcome"], registry=r)
        self.turn_seconds = Histogram(
            "oc_turn_seconds",
            "Turn latency, model included.",
            buckets=(0.005, 0.01, 0.05, 0.1, 0.5, 1, 2, 5, 10, 30, 60, 120),
            registry=r,
        )
        self.queue_depth = Gauge("oc_queue_depth", "Jobs waiting in conversation lanes.", registry=r)
        self.connector_up = Gauge("oc_connector_up", "1 when a connector is connected.", ["platform"], registry=r)

    def render(self) -> bytes:
        """The text exposition format."""
        return generate_latest(self.registry)
