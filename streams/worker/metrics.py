"""Domain metrics, in the same Prometheus registry as Faust's sensors (served at /metrics).

The seed's "Key Metrics to Monitor": discrepancy rates by severity, reconciliation outcomes
(corrections issued, operations blocked), and durations (preflight, proof-state check). Declared
as one table, so a metric's name, help and labels sit on one line each.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from streams.core.domain import MintState, Source
from streams.mint.observer import MintHealth, RequestOutcome

LATENCY_BUCKETS = (0.002, 0.005, 0.01, 0.02, 0.03, 0.05, 0.075, 0.1, 0.15, 0.25, 0.5, 1, 2.5, 5)
_YS_BUCKETS = (1, 8, 32, 100, 250, 500, 1000)
_HEALTH_VALUE = {
    MintHealth.OK: 0,
    MintHealth.DEGRADED: 1,
    MintHealth.RATE_LIMITED: 2,
    MintHealth.CIRCUIT_OPEN: 3,
}
_COUNTERS = {
    "discrepancies": ("proofrecon_discrepancies", "Discrepancy events emitted",
                      ("severity", "type", "mint_url", "lifecycle", "source")),
    "verdicts": ("proofrecon_preflight_verdicts", "Preflight verdicts answered",
                 ("verdict", "code")),
    "proofs_checked": ("proofrecon_proofs_checked", "Proofs whose mint state was checked",
                       ("source", "mint_url")),
    "corrections": ("proofrecon_corrections_issued", "Correction commands issued to the wallet",
                    ("set_status",)),
    "dead_letters": ("proofrecon_dead_letters", "Messages sent to the dead-letter topic",
                     ("source_topic", "error_kind")),
    "ledger_updates": ("proofrecon_ledger_proof_updates",
                       "Proof records written or removed by token-status events", ("outcome",)),
    "mint_requests": ("proofrecon_mint_requests", "HTTP checkstate exchanges with a mint",
                      ("mint_url", "outcome")),
    "mint_checks": ("proofrecon_mint_checks", "Checks asked of a mint gateway, by outcome",
                    ("mint_url", "source", "outcome")),
    "mint_cache_hits": ("proofrecon_mint_spent_cache_hits",
                        "Ys answered SPENT from the cache without asking the mint",
                        ("mint_url", "source")),
    "preflight_truth": ("proofrecon_preflight_truth",
                        "Melt verdicts by where their mint states came from "
                        "(checkstate, live, checkstate+live)", ("mint_url", "truth")),
    "watch_notifications": ("proofrecon_watch_notifications", "NUT-17 notifications used",
                            ("mint_url", "state")),
    "watch_reconnects": ("proofrecon_watch_reconnects", "Watch connections replaced",
                         ("mint_url", "reason")),
    "watch_snapshots": ("proofrecon_watch_snapshots",
                        "Checkstate snapshots of watched Ys, by outcome", ("mint_url", "outcome")),
    "watch_messages": ("proofrecon_watch_messages", "WebSocket messages sent to a mint",
                       ("mint_url", "kind")),
    "watch_rejected": ("proofrecon_watch_rejected",
                       "Watch messages refused (ours by the mint, or the mint's by us)",
                       ("mint_url",)),
}  # fmt: skip
_GAUGES = {
    "watch_wanted": ("proofrecon_watch_wanted_ys", "Ys the worker wants watched", ("mint_url",)),
    "watch_watched": ("proofrecon_watch_watched_ys", "Ys watched now on a live connection",
                      ("mint_url",)),
    "watch_connections": ("proofrecon_watch_connections", "WebSocket connections open",
                          ("mint_url",)),
}  # fmt: skip


class Metrics:
    """The worker's own metrics; `registry` also serves Faust's sensors and alerting's."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        for attr, (name, help_, labels) in _COUNTERS.items():
            setattr(self, attr, Counter(name, help_, labels, registry=registry))
        for attr, (name, help_, labels) in _GAUGES.items():
            setattr(self, attr, Gauge(name, help_, labels, registry=registry))
        self.preflight_duration = Histogram(
            "proofrecon_preflight_duration_seconds",
            "From consuming a melt request to answering it",
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.mint_request_duration = Histogram(
            "proofrecon_mint_request_duration_seconds",
            "Duration of one checkstate exchange",
            ["mint_url"],
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.mint_request_ys = Histogram(
            "proofrecon_mint_request_ys",
            "Ys carried by one checkstate exchange",
            ["mint_url"],
            buckets=_YS_BUCKETS,
            registry=registry,
        )
        self.mint_health = Gauge(
            "proofrecon_mint_health",
            "Mint health: 0 OK, 1 degraded, 2 rate limited, 3 circuit open",
            ["mint_url"],
            registry=registry,
        )

    # Declared for the type checker; set from _COUNTERS above.
    discrepancies: Counter
    verdicts: Counter
    proofs_checked: Counter
    corrections: Counter
    dead_letters: Counter
    ledger_updates: Counter
    mint_requests: Counter
    mint_checks: Counter
    mint_cache_hits: Counter
    preflight_truth: Counter
    watch_notifications: Counter
    watch_reconnects: Counter
    watch_snapshots: Counter
    watch_messages: Counter
    watch_rejected: Counter
    watch_wanted: Gauge
    watch_watched: Gauge
    watch_connections: Gauge


class PrometheusGatewayObserver:
    """Binds the mint gateway's hooks to `Metrics` (health changes reach alerting through the
    gateways' own health listeners, not through here)."""

    def __init__(self, metrics: Metrics) -> None:
        self._m = metrics

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


class PrometheusWatchObserver:
    """Binds the live watch's hooks (streams.mint.WatchObserver) to `Metrics`."""

    def __init__(self, metrics: Metrics) -> None:
        self._m = metrics

    def gauges(self, mint_url: str, *, wanted: int, watched: int, connections: int) -> None:
        self._m.watch_wanted.labels(mint_url).set(wanted)
        self._m.watch_watched.labels(mint_url).set(watched)
        self._m.watch_connections.labels(mint_url).set(connections)

    def message_sent(self, mint_url: str, *, kind: str) -> None:
        self._m.watch_messages.labels(mint_url, kind).inc()

    def notification(self, mint_url: str, *, state: MintState) -> None:
        self._m.watch_notifications.labels(mint_url, state.value).inc()

    def reconnect(self, mint_url: str, *, reason: str) -> None:
        self._m.watch_reconnects.labels(mint_url, reason).inc()

    def snapshot(self, mint_url: str, *, ys: int, outcome: str) -> None:
        self._m.watch_snapshots.labels(mint_url, outcome).inc()

    def rejected(self, mint_url: str, *, reason: str) -> None:
        self._m.watch_rejected.labels(mint_url).inc()
