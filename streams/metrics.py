"""Domain metrics, in the same Prometheus registry as Faust's sensors (served at /metrics).

The seed's "Key Metrics to Monitor": discrepancy rates by severity, reconciliation outcomes
(corrections issued, operations blocked), and durations (preflight, proof-state check).
"""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from streams.domain import Source
from streams.mint.observer import MintHealth, RequestOutcome

_LATENCY_BUCKETS = (0.002, 0.005, 0.01, 0.02, 0.03, 0.05, 0.075, 0.1, 0.15, 0.25, 0.5, 1, 2.5, 5)
_HEALTH_VALUE = {
    MintHealth.OK: 0,
    MintHealth.DEGRADED: 1,
    MintHealth.RATE_LIMITED: 2,
    MintHealth.CIRCUIT_OPEN: 3,
}


class Metrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        self.discrepancies = Counter(
            "proofrecon_discrepancies",
            "Discrepancy events emitted",
            ["severity", "type", "mint_url", "lifecycle", "source"],
            registry=registry,
        )
        self.verdicts = Counter(
            "proofrecon_preflight_verdicts",
            "Preflight verdicts answered",
            ["verdict", "code"],
            registry=registry,
        )
        self.preflight_duration = Histogram(
            "proofrecon_preflight_duration_seconds",
            "From consuming a melt request to answering it",
            buckets=_LATENCY_BUCKETS,
            registry=registry,
        )
        self.proofs_checked = Counter(
            "proofrecon_proofs_checked",
            "Proofs whose mint state was checked",
            ["source", "mint_url"],
            registry=registry,
        )
        self.corrections = Counter(
            "proofrecon_corrections_issued",
            "Correction commands issued to the wallet",
            ["set_status"],
            registry=registry,
        )
        self.dead_letters = Counter(
            "proofrecon_dead_letters",
            "Messages sent to the dead-letter topic",
            ["source_topic", "error_kind"],
            registry=registry,
        )
        self.ledger_updates = Counter(
            "proofrecon_ledger_proof_updates",
            "Proof records written or removed by token-status events",
            ["outcome"],
            registry=registry,
        )
        self.mint_requests = Counter(
            "proofrecon_mint_requests",
            "HTTP checkstate exchanges with a mint",
            ["mint_url", "outcome"],
            registry=registry,
        )
        self.mint_request_duration = Histogram(
            "proofrecon_mint_request_duration_seconds",
            "Duration of one checkstate exchange",
            ["mint_url"],
            buckets=_LATENCY_BUCKETS,
            registry=registry,
        )
        self.mint_request_ys = Histogram(
            "proofrecon_mint_request_ys",
            "Ys carried by one checkstate exchange",
            ["mint_url"],
            buckets=(1, 8, 32, 100, 250, 500, 1000),
            registry=registry,
        )
        self.mint_checks = Counter(
            "proofrecon_mint_checks",
            "Checks asked of a mint gateway, by outcome",
            ["mint_url", "source", "outcome"],
            registry=registry,
        )
        self.mint_cache_hits = Counter(
            "proofrecon_mint_spent_cache_hits",
            "Ys answered SPENT from the cache without asking the mint",
            ["mint_url", "source"],
            registry=registry,
        )
        self.mint_health = Gauge(
            "proofrecon_mint_health",
            "Mint health: 0 OK, 1 degraded, 2 rate limited, 3 circuit open",
            ["mint_url"],
            registry=registry,
        )
        self.alerts_raised = Counter(
            "proofrecon_alerts_raised",
            "Alerts emitted to the alerts topic",
            ["kind", "severity", "mint_url"],
            registry=registry,
        )
        self.alerts_suppressed = Counter(
            "proofrecon_alerts_suppressed",
            "Alerts not raised: already raised (replay) or inside a mint's flap cool-down",
            ["kind", "reason"],
            registry=registry,
        )
        self.alert_inputs_dropped = Counter(
            "proofrecon_alert_inputs_dropped",
            "Alerting inputs ignored: already counted (replayed offsets) or too late for a window",
            ["reason"],
            registry=registry,
        )
        self.alert_deliveries = Counter(
            "proofrecon_alert_deliveries",
            "Webhook deliveries by outcome (delivered, retry, gave_up, queue_full)",
            ["receiver", "outcome"],
            registry=registry,
        )
        self.alert_delivery_queue = Gauge(
            "proofrecon_alert_delivery_queue",
            "Alerts waiting for delivery per webhook",
            ["receiver"],
            registry=registry,
        )


class PrometheusGatewayObserver:
    """Binds the mint gateway's hooks to `Metrics`; health changes also go to `on_health`."""

    def __init__(
        self,
        metrics: Metrics,
        on_health: Callable[[str, MintHealth, MintHealth], None] | None = None,
    ) -> None:
        self._m = metrics
        self._on_health = on_health

    def request_finished(
        self, mint_url: str, *, ys: int, outcome: RequestOutcome, latency_s: float
    ) -> None:
        self._m.mint_requests.labels(mint_url, outcome.value).inc()
        self._m.mint_request_duration.labels(mint_url).observe(latency_s)
        self._m.mint_request_ys.labels(mint_url).observe(ys)

    def check_finished(
        self, mint_url: str, *, source: Source, ys: int, outcome: str, latency_s: float
    ) -> None:
        self._m.mint_checks.labels(mint_url, source.value, outcome).inc()

    def cache_hits(self, mint_url: str, *, source: Source, hits: int) -> None:
        self._m.mint_cache_hits.labels(mint_url, source.value).inc(hits)

    def health_changed(self, mint_url: str, old: MintHealth, new: MintHealth) -> None:
        self._m.mint_health.labels(mint_url).set(_HEALTH_VALUE[new])
        if self._on_health is not None:
            self._on_health(mint_url, old, new)
