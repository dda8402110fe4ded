"""Prometheus metrics of the ClickHouse sink (in the worker's registry when it runs there)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram

_INSERT_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)


class SinkMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        # A private registry by default: two sinks in one process (tests) must not collide.
        registry = registry if registry is not None else CollectorRegistry()
        self.rows = Counter(
            "proofrecon_sink_rows_inserted",
            "Rows inserted (a server counts deduplicated replays as 0; embedded chDB does not)",
            ["table"],
            registry=registry,
        )
        self.batches = Counter(
            "proofrecon_sink_batches", "Batches inserted and committed", registry=registry
        )
        self.bad_records = Counter(
            "proofrecon_sink_bad_records",
            "Records skipped because they could not be decoded or validated",
            ["topic", "reason"],
            registry=registry,
        )
        self.duplicates = Counter(
            "proofrecon_sink_duplicates_dropped",
            "Events dropped because their id was seen recently (upstream re-emissions)",
            ["topic"],
            registry=registry,
        )
        self.rejected_batches = Counter(
            "proofrecon_sink_rejected_batches",
            "Fast-path batches ClickHouse rejected for their data (then validated record by "
            "record)",
            ["topic"],
            registry=registry,
        )
        self.retries = Counter(
            "proofrecon_sink_retries",
            "Backoffs because ClickHouse did not accept a batch or a commit failed",
            ["code"],
            registry=registry,
        )
        self.insert_seconds = Histogram(
            "proofrecon_sink_insert_seconds",
            "Duration of one batch insert",
            buckets=_INSERT_BUCKETS,
            registry=registry,
        )
