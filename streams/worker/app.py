"""The composition root: `create_app(settings)` builds the Faust app and the runtime, and registers
every agent, timer and view. Nothing else in the worker builds parts or wires them together.

At-least-once, one actor per agent (concurrency > 1 can commit past an in-flight message,
faust-streaming #606), RocksDB tables with changelogs, standby replicas a setting. Every output
carries a deterministic id and every consumer is idempotent, which is why exactly-once mode
(unsafe for topics this app does not consume itself: #177, #323, #440, #517) is not needed.
"""

from __future__ import annotations

import inspect
from typing import Any, cast

import faust
from faust.sensors.prometheus import setup_prometheus_sensors
from prometheus_client import CollectorRegistry

from sinks.analytics.queries import ClickHouseAnalytics
from sinks.analytics.web import register_analytics_views
from sinks.clickhouse import ClickHouseStore
from sinks.service import ClickHouseSinkService
from streams.core.contracts import ContractLimits
from streams.core.kafka import changelog_configs, faust_credentials
from streams.core.logs import logging_config
from streams.core.settings import Settings
from streams.core.webauth import auth_middleware
from streams.mint import MintGateways
from streams.recon.ledger import token_rows
from streams.recon.policy import Policy
from streams.worker.agents import alerts, findings, live, melt_requests, sweep, token_status
from streams.worker.emit import Emitter, ReplyTopics
from streams.worker.events import raw_topic
from streams.worker.metrics import Metrics, PrometheusGatewayObserver
from streams.worker.runtime import JsonTable, Runtime
from streams.worker.token_table import RowsTable
from streams.worker.transport import use_low_latency_transport
from streams.worker.web import register_views


def _faust_app(settings: Settings) -> faust.App:
    kafka, web = settings.kafka, settings.web
    brokers = ";".join(f"kafka://{h.strip()}" for h in kafka.bootstrap_servers.split(","))
    return faust.App(
        kafka.app_id,
        broker=brokers,
        broker_credentials=faust_credentials(kafka),
        store="rocksdb://",
        datadir=str(settings.data_dir / "faust"),
        processing_guarantee="at_least_once",
        topic_partitions=settings.topics.partitions,
        topic_replication_factor=settings.topics.replication_factor,
        topic_disable_leader=True,
        table_standby_replicas=kafka.standby_replicas,
        consumer_group_instance_id=kafka.instance_id,
        broker_commit_interval=kafka.commit_interval_s,
        broker_session_timeout=kafka.session_timeout_s,
        broker_heartbeat_interval=min(3.0, kafka.session_timeout_s / 3),
        consumer_auto_offset_reset="earliest",
        web_enabled=True,
        web_bind=web.host,
        web_host=web.host,
        web_port=web.port,
        web_tables_enabled=False,
        web_application_options={
            "middlewares": [auth_middleware(web)],
            "client_max_size": web.max_body_bytes,
        },
        logging_config=logging_config(settings.log_level),
        autodiscover=False,
        producer_linger=0.001,
        # aiokafka's default waits 20 minutes for a missing topic's metadata (review finding 2).
        producer_request_timeout=kafka.send_timeout_s,
        # At-least-once: what a stopping worker has not acknowledged is redone after a restart,
        # so a stop need not wait for the streams to drain (a crash once hung in that wait).
        stream_wait_empty=False,
    )


def _table(app: faust.App, settings: Settings, name: str, help_: str) -> JsonTable:
    # JSON keys: a str key must read back as the same str after changelog recovery.
    schema: faust.Schema[str, Any] = faust.Schema(
        key_type=str, key_serializer="json", value_serializer="json"
    )
    table = RowsTable(
        app,
        name=name,
        default=None,
        beacon=app.tables.beacon,
        partitions=settings.topics.partitions,
        schema=schema,
        help=help_,
        extra_topic_configs=changelog_configs(settings),
    )
    return cast(JsonTable, app.tables.add(table))


def create_app(settings: Settings, *, registry: CollectorRegistry | None = None) -> Runtime:
    """Build the app and register every agent, timer and view. Nothing connects until it runs."""
    app = _faust_app(settings)
    use_low_latency_transport(app)
    metrics = Metrics(registry or CollectorRegistry())
    n = settings.topics.partitions
    topics = {
        name: raw_topic(app, getattr(settings.topics, name), n)
        for name in settings.topics.topic_fields()
    }
    runtime = Runtime(
        settings=settings,
        app=app,
        policy=Policy.from_settings(settings.policy),
        limits=ContractLimits.from_settings(settings.policy),
        metrics=metrics,
        gateways=MintGateways.from_settings(settings, observer=PrometheusGatewayObserver(metrics)),
        topics=topics,
        emit=Emitter(topics, ReplyTopics(app, settings), metrics),
        tokens=_table(app, settings, "tokens", "The wallet DB's view of tokens (npub|token_id)"),
        open_discrepancies=_table(
            app, settings, "open-discrepancies", "Open discrepancies (npub|Y)"
        ),
    )
    runtime.closables.append(runtime.gateways)
    _register(runtime)
    return runtime


def _register(runtime: Runtime) -> None:
    setup_prometheus_sensors(runtime.app, registry=runtime.metrics.registry)

    async def rebuild_indexes() -> None:
        # After every recovery (start, rebalance) the table holds the tokens of the partitions
        # this worker owns; the derived indexes are rebuilt from exactly those: the proof index
        # before the worker is ready (melts are judged with it), the others in the background
        # (streams.worker.rebuilds).
        runtime.proof_index.rebuild(token_rows(runtime.tokens.items()))
        runtime.rebuilds.restart(runtime.on_recovered)

    runtime.tokens.on_recover(rebuild_indexes)
    runtime.closables.append(runtime.rebuilds)
    token_status.register(runtime)
    melt_requests.register(runtime)
    findings.register(runtime)
    sweep.register(runtime)
    live.register(runtime)
    alerts.register(runtime)
    register_views(runtime)
    if runtime.settings.clickhouse.sink_enabled:
        _register_sink(runtime)

    async def close_all(app: Any, **kwargs: Any) -> None:
        for closable in runtime.closables:
            done = closable.close()
            if inspect.isawaitable(done):
                await done

    cast(Any, runtime.app.on_before_shutdown).connect(close_all)


def _register_sink(runtime: Runtime) -> None:
    """The ClickHouse sink runs inside the worker: in embedded mode the worker owns the chDB path,
    so the analyst endpoints (`/v1/analytics/*`, `/report`) are served here too."""
    sink = ClickHouseSinkService(runtime.settings, registry=runtime.metrics.registry)
    runtime.app.add_dependency(sink)
    # A second client on the same path: analyst queries never wait behind a batch insert.
    analytics = ClickHouseAnalytics(ClickHouseStore(runtime.settings, name="clickhouse-analytics"))
    runtime.closables.append(analytics)
    register_analytics_views(runtime.app, analytics, status=lambda: sink.stats.as_dict())
