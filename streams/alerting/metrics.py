"""Alerting's own metrics (raised, suppressed, dropped inputs, webhook deliveries), registered on
the registry the worker serves at /metrics."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge


class AlertMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.raised = Counter(
            "proofrecon_alerts_raised",
            "Alerts emitted to the alerts topic",
            ["kind", "severity", "mint_url"],
            registry=registry,
        )
        self.suppressed = Counter(
            "proofrecon_alerts_suppressed",
            "Alerts not raised: already raised (replay) or inside a mint's flap cool-down",
            ["kind", "reason"],
            registry=registry,
        )
        self.inputs_dropped = Counter(
            "proofrecon_alert_inputs_dropped",
            "Alerting inputs ignored: already counted (replayed offsets) or too late for a window",
            ["reason"],
            registry=registry,
        )
        self.deliveries = Counter(
            "proofrecon_alert_deliveries",
            "Webhook deliveries by outcome (delivered, retry, gave_up, queue_full)",
            ["receiver", "outcome"],
            registry=registry,
        )
        self.delivery_queue = Gauge(
            "proofrecon_alert_delivery_queue",
            "Alerts waiting for delivery per webhook",
            ["receiver"],
            registry=registry,
        )
