"""Prometheus metrics, on a registry owned by the app (no process-global state).

Every series the dashboard (``deploy/grafana/opencomputer.json``) and the autoscaler
(``deploy/k8s/``) read is defined here, so one file says what ``/metrics`` exports.
Gauges that are cheaper to read than to track are filled by *refreshers* that run
right before each scrape.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

__all__ = ["Metrics"]

logger = logging.getLogger(__name__)

_LATENCY = (0.005, 0.01, 0.05, 0.1, 0.5, 1, 2, 5, 10, 30, 60, 120)
_TOOL_LATENCY = (0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30, 60)


class Metrics:
    """The counters and timings ``/metrics`` exposes."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self._refreshers: list[Callable[[], None]] = []
        # --- turns (counted by the runtime) -------------------------------------------
        self.inbound = Counter(
            "oc_inbound_events", "Accepted inbound events.", ["platform", "type"], registry=r
        )
        self.turns = Counter("oc_turns", "Finished turns.", ["platform", "outcome"], registry=r)
        self.turn_seconds = Histogram(
            "oc_turn_seconds", "Turn latency, model included.", buckets=_LATENCY, registry=r
        )
        self.queue_depth = Gauge(
            "oc_queue_depth", "Jobs waiting in conversation lanes.", registry=r
        )
        # --- model calls (bot/observability.py: MeteredModel) --------------------------
        self.model_requests = Counter(
            "oc_model_requests",
            "Chat calls to the model server, by outcome (ok, error).",
            ["model", "outcome"],
            registry=r,
        )
        self.model_seconds = Histogram(
            "oc_model_seconds",
            "Duration of one chat call, streaming included.",
            ["model"],
            buckets=_LATENCY,
            registry=r,
        )
        self.model_tokens = Counter(
            "oc_model_tokens",
            "Tokens the model server reported, by kind (prompt, completion).",
            ["model", "kind"],
            registry=r,
        )
        # --- tools (bot/observability.py: metered_tool_layer) ----------------------------
        self.tool_calls = Counter(
            "oc_tool_calls", "Tool calls the agent made.", ["plugin", "tool"], registry=r
        )
        self.tool_errors = Counter(
            "oc_tool_errors",
            "Tool calls that failed (error, refusal, time-out).",
            ["plugin", "tool"],
            registry=r,
        )
        self.tool_seconds = Histogram(
            "oc_tool_seconds",
            "Duration of one tool call.",
            ["plugin"],
            buckets=_TOOL_LATENCY,
            registry=r,
        )
        # --- sub-agents (bot/delegation.py) ---------------------------------------------
        self.delegations = Counter(
            "oc_delegations",
            "Tasks handed to sub-agents, by outcome (ok, steps, tokens: budget spent; timeout, "
            "paused: waits for approval, refused, error).",
            ["outcome"],
            registry=r,
        )
        # --- feedback, connectors, scale-out streams -----------------------------------
        self.feedback = Counter(
            "oc_feedback",
            "Ratings people gave the bot's replies by reacting (score: positive, negative).",
            ["platform", "score"],
            registry=r,
        )
        self.connector_up = Gauge(
            "oc_connector_up", "1 when a connector is connected.", ["platform"], registry=r
        )
        self.connector_state = Gauge(
            "oc_connector_state",
            "1 for the state each connector is in now, 0 for the others.",
            ["platform", "state"],
            registry=r,
        )
        self.stream_lag = Gauge(
            "oc_stream_lag",
            "Scale-out: inbound entries no worker has read yet, over every partition.",
            registry=r,
        )
        self.stream_pending = Gauge(
            "oc_stream_pending",
            "Scale-out: inbound entries read by a worker and not yet acknowledged.",
            registry=r,
        )

    def add_refresher(self, refresh: Callable[[], None]) -> None:
        """Run ``refresh`` before every scrape (to set gauges from current state)."""
        self._refreshers.append(refresh)

    def render(self) -> bytes:
        """The text exposition format (refreshers run first; a failing one is logged)."""
        for refresh in self._refreshers:
            try:
                refresh()
            except Exception:
                logger.exception("metrics refresher failed")
        return generate_latest(self.registry)
