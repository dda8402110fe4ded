"""The Faust application: built by `create_app(settings)`, run by `proofrecon worker`.

At-least-once, one actor per agent (concurrency > 1 can commit past an in-flight message,
faust-streaming #606), RocksDB tables with changelogs, standby replicas off by default. Every
output carries a deterministic id and every consumer is idempotent, which is why exactly-once mode
(unsafe for topics this app does not consume itself: #177, #323, #440, #517) is not needed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, TypeAlias, cast

import faust
from faust.tables.manager import TableManager
from prometheus_client import CollectorRegistry

from streams.classify import Policy
from streams.errors import ContractError
from streams.ledger import ProofIndex, token_rows
from streams.logs import logging_config
from streams.metrics import Metrics, PrometheusGatewayObserver
from streams.mint import MintGateways, MintHealth
from streams.mint.observer import HealthListener
from streams.models import ContractLimits
from streams.settings import Settings
from streams.topics import faust_credentials
from streams.webauth import auth_middleware

JsonTable: TypeAlias = faust.Table[str, dict[str, Any]]


@dataclass(eq=False)
class Runtime:
    """Everything the agents, timers and web views share inside one worker."""

    settings: Settings
    app: faust.App
    policy: Policy
    limits: ContractLimits
    metrics: Metrics
    gateways: MintGateways
    topics: dict[str, faust.TopicT]
    tokens: JsonTable  # npub|token_id -> TokenRecord (the ledger)
    open_discrepancies: JsonTable  # npub|Y -> OpenDiscrepancy
    proof_index: ProofIndex = field(default_factory=ProofIndex)  # npub|Y -> token_id
    health_listeners: list[HealthListener] = field(default_factory=list)
    extras: dict[str, Any] = field(default_factory=dict)
    reply_topics: dict[str, faust.TopicT] = field(default_factory=dict)

    def reply_topic(self, name: str | None) -> faust.TopicT:
        """Where an answer goes: the results topic, or an allow-listed reply topic. Anything
        else is refused (ContractError) before it can reach the producer: a reply_to naming a
        changelog or an internal topic would corrupt it."""
        wanted = name or self.settings.topics.preflight_results
        if wanted not in self.settings.reply_topics:
            raise ContractError("reply_to is not on the reply allow-list")
        topic = self.reply_topics.get(wanted)
        if topic is None:
            topic = self.reply_topics[wanted] = _raw_topic(
                self.app, wanted, self.settings.topics.partitions
            )
        return topic

    def on_mint_health(self, mint_url: str, old: MintHealth, new: MintHealth) -> None:
        for listener in list(self.health_listeners):
            listener(mint_url, old, new)


def _raw_topic(app: faust.App, name: str, partitions: int) -> faust.TopicT:
    # Raw bytes in and out: we decode ourselves, so bad input reaches the dead-letter path
    # instead of Faust's decoder, and keys stay the producer's exact bytes (murmur2 of the npub).
    return app.topic(
        name,
        key_type=bytes,
        value_type=bytes,
        key_serializer="raw",
        value_serializer="raw",
        partitions=partitions,
        internal=False,
    )


def _faust_app(settings: Settings) -> faust.App:
    brokers = ";".join(f"kafka://{h.strip()}" for h in settings.kafka.bootstrap_servers.split(","))
    return faust.App(
        settings.kafka.app_id,
        broker=brokers,
        broker_credentials=faust_credentials(settings.kafka),
        store="rocksdb://",
        datadir=str(settings.data_dir / "faust"),
        processing_guarantee="at_least_once",
        topic_partitions=settings.topics.partitions,
        topic_replication_factor=settings.topics.replication_factor,
        topic_disable_leader=True,
        table_standby_replicas=settings.kafka.standby_replicas,
        consumer_group_instance_id=settings.kafka.instance_id,
        broker_commit_interval=settings.kafka.commit_interval_s,
        broker_session_timeout=settings.kafka.session_timeout_s,
        broker_heartbeat_interval=min(3.0, settings.kafka.session_timeout_s / 3),
        consumer_auto_offset_reset="earliest",
        web_enabled=True,
        web_bind=settings.web.host,
        web_host=settings.web.host,
        web_port=settings.web.port,
        web_tables_enabled=False,
        web_application_options={
            "middlewares": [auth_middleware(settings.web)],
            "client_max_size": settings.web.max_body_bytes,
        },
        logging_config=logging_config(settings.log_level),
        autodiscover=False,
        producer_linger=0.001,
        # aiokafka's default waits 20 minutes for a missing topic's metadata (review finding 2).
        producer_request_timeout=settings.kafka.send_timeout_s,
    )


def _table(app: faust.App, name: str, partitions: int, help_: str) -> JsonTable:
    # JSON keys: a str key must read back as the same str after changelog recovery.
    schema: faust.Schema[str, Any] = faust.Schema(
        key_type=str, key_serializer="json", value_serializer="json"
    )
    table = app.Table(name, default=None, partitions=partitions, schema=schema, help=help_)
    return cast(JsonTable, table)


def tables_recovered(app: faust.App) -> bool:
    """True once the tables are restored from their changelogs (and after each rebalance)."""
    manager = cast(TableManager, app.tables)
    return manager.recovery.completed.is_set() and not app.rebalancing


def create_app(settings: Settings, *, registry: CollectorRegistry | None = None) -> Runtime:
    """Build the app and register every agent, timer and view. Nothing connects until it runs."""
    app = _faust_app(settings)
    registry = registry or CollectorRegistry()
    metrics = Metrics(registry)
    n = settings.topics.partitions
    topics = {
        name: _raw_topic(app, getattr(settings.topics, name), n)
        for name in settings.topics.topic_fields()
    }
    runtime = Runtime(
        settings=settings,
        app=app,
        policy=Policy.from_settings(settings.policy),
        limits=ContractLimits.from_settings(settings.policy),
        metrics=metrics,
        gateways=MintGateways.from_settings(settings),
        topics=topics,
        tokens=_table(app, "tokens", n, "The wallet DB's view of each token (npub|token_id)"),
        open_discrepancies=_table(app, "open-discrepancies", n, "Open discrepancies (npub|Y)"),
    )
    runtime.gateways = MintGateways.from_settings(
        settings, observer=PrometheusGatewayObserver(metrics, runtime.on_mint_health)
    )
    _register(runtime)
    return runtime


def _register(runtime: Runtime) -> None:
    # Imported here: each module registers its agents on the app it is given.
    from faust.sensors.prometheus import setup_prometheus_sensors

    from streams.agents import findings, ledger, preflight, sweep
    from streams.alerting import agent as alerting
    from streams.web import register_views

    setup_prometheus_sensors(runtime.app, registry=runtime.metrics.registry)

    async def _rebuild_proof_index() -> None:
        # After every recovery (start, rebalance) the table holds the tokens of the partitions
        # this worker owns; the index is derived from exactly those.
        runtime.proof_index.rebuild(token_rows(runtime.tokens.items()))
        sweeper = runtime.extras.get("sweeper")
        if sweeper is not None:
            await sweeper.rebuild()

    runtime.tokens.on_recover(_rebuild_proof_index)
    ledger.register(runtime)
    preflight.register(runtime)
    findings.register(runtime)
    sweep.register(runtime)
    alerting.register(runtime)
    register_views(runtime)
    if runtime.settings.clickhouse.sink_enabled:
        _register_sink(runtime)

    async def _close_gateways(app: Any, **kwargs: Any) -> None:
        await runtime.gateways.close()

    cast(Any, runtime.app.on_before_shutdown).connect(_close_gateways)


def _register_sink(runtime: Runtime) -> None:
    """The ClickHouse sink runs inside the worker: in embedded mode the worker owns the chDB path,
    so the analyst endpoints (`/v1/analytics/*`, `/report`) are served here too."""
    from sinks.analytics import ClickHouseAnalytics
    from sinks.clickhouse import ClickHouseStore
    from sinks.service import ClickHouseSinkService
    from streams.web_analytics import register_analytics_views

    sink = ClickHouseSinkService(runtime.settings, registry=runtime.metrics.registry)
    runtime.app.add_dependency(sink)
    runtime.extras["sink"] = sink
    # A second client on the same path: analyst queries never wait behind a batch insert.
    analytics = ClickHouseAnalytics(ClickHouseStore(runtime.settings, name="clickhouse-analytics"))
    register_analytics_views(runtime.app, analytics, status=lambda: sink.stats.as_dict())
