"""Alerting inside the worker: forwarders, the alerts agent, its timer, health and delivery.

    recon.discrepancies ─┐ forwarders (re-key by mint_url,    ┌─► [alerts agent] ─► recon.alerts
    recon.proof-checks ──┤  name the source offset)           │     state: alert-state, -raised,
    gateway health ──────┼──────────► recon.alerts-input ─────┘     -outbox (RocksDB + changelog)
    timer (ticks) ───────┤                                           │
    delivery receipts ───┘                                           └─► webhooks (never awaited)

Why a topic of its own: a mint's alerting state spans npubs, and discrepancies are keyed by npub,
so they land on any partition; Faust tables only see the current event's partition. Re-keyed by
mint, every input of a mint reaches one partition owner.

The outbox makes alerts survive a stop or a crash: an alert is written there (with its receivers)
in the same event that raises it, then published to `recon.alerts` and submitted to the webhooks.
Delivery receipts come back as signals and empty it; on the first tick after a start, and every
`_OUTBOX_SCAN_S`, whatever is left is published again if it never was, and resubmitted to its
receivers if they are not already trying. Delivery is therefore at least once; receivers
deduplicate (Alertmanager by labels, JSON receivers by `alert_id`).
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
import uuid
from collections.abc import Coroutine
from typing import Any, cast

import faust
from pydantic import ValidationError

from streams.alerting.delivery import Deliverer, Receiver
from streams.alerting.engine import AlertEngine, Outcome
from streams.alerting.metrics import AlertMetrics
from streams.alerting.outbox import Outbox
from streams.alerting.rules import to_ms
from streams.alerting.signals import (
    ChecksSignal,
    DiscrepancySignal,
    HealthSignal,
    ReceiptSignal,
    Signal,
    SourceRef,
    TickSignal,
    parse_signal,
    signal_bytes,
)
from streams.core.cashu import y_from_secret
from streams.core.contracts import (
    Alert,
    DiscrepancyEvent,
    ProofCheckEvent,
    to_json_bytes,
)
from streams.core.domain import ErrorKind, Lifecycle, Source
from streams.core.errors import MintError
from streams.core.ids import proof_ref
from streams.core.kafka import changelog_configs
from streams.core.logs import log
from streams.core.mint_url import normalise_or_strip
from streams.mint import MintHealth
from streams.worker.agents.loop import run_guarded
from streams.worker.events import RawEvent, RawStream, event_context, raw_value, utcnow
from streams.worker.runtime import JsonTable, Runtime

logger = logging.getLogger("proofrecon.alerts")

_OUTBOX_SCAN_S = 30.0
# The recovery probe asks about a Y nobody holds: any valid point does, the mint says UNSPENT.
PROBE_Y = y_from_secret("proofrecon-alerting-probe")


def _table(runtime: Runtime, name: str, help_: str) -> JsonTable:
    # As streams.worker.app's tables: JSON keys and values, so a str key reads back as the same str
    # after changelog recovery.
    schema: faust.Schema[str, Any] = faust.Schema(
        key_type=str, key_serializer="json", value_serializer="json"
    )
    table = runtime.app.Table(
        name,
        default=None,
        partitions=runtime.settings.topics.partitions,
        schema=schema,
        help=help_,
        extra_topic_configs=changelog_configs(runtime.settings),
    )
    return cast(JsonTable, table)


def generator_url(runtime: Runtime) -> str:
    web = runtime.settings.web
    return runtime.settings.alerts.generator_url or f"http://{web.host}:{web.port}/metrics"


class Alerting:
    def __init__(self, runtime: Runtime) -> None:
        self._rt = runtime
        self.conf = runtime.settings.alerts
        self.input = runtime.topics["alerts_input"]
        self.state = _table(runtime, "alert-state", "Alerting state per mint and partition")
        self.raised = _table(runtime, "alert-raised", "Ids of alerts raised (replay dedup)")
        self.outbox = Outbox(
            _table(runtime, "alert-outbox", "Alerts not yet published or delivered"),
            self.conf.webhook_give_up_after_s,
        )
        self.metrics = AlertMetrics(runtime.metrics.registry)
        self.engine = AlertEngine(self.conf, self.state, self.raised)
        self.deliverer = Deliverer(
            self.conf,
            generator_url=generator_url(runtime),
            metrics=self.metrics,
            on_done=self._delivered,
        )
        self._emit = runtime.emit
        self._reporter = f"{socket.gethostname()}:{os.getpid()}"
        self._busy: dict[int, bool] = {}  # partition -> a tick could change something
        self._open_incidents: set[str] = set()
        self._last_scan: dict[int, float] = {}
        self._last_probe: dict[str, float] = {}
        self._tasks: set[asyncio.Task[Any]] = set()

    # --- forwarders ------------------------------------------------------------------------

    async def forward_discrepancy(self, event: RawEvent) -> None:
        found = await self._emit.decode(event, DiscrepancyEvent, "alerts: ")
        if found is None:
            return
        if found.lifecycle is not Lifecycle.OPENED:
            return  # RESOLVED events are lifecycle updates: no rule counts them
        mint_url = normalise_or_strip(found.mint_url)
        await self._send(
            DiscrepancySignal(
                event_id=found.event_id,
                at=found.detected_at,
                mint_url=mint_url,
                npub=found.npub,
                severity=found.severity,
                type=found.type,
                lifecycle=found.lifecycle,
                request_id=found.request_id,
                proof_ref=proof_ref(mint_url=mint_url, y=found.y),
                source=_source(event),
            ),
            mint_url,
        )

    async def forward_checks(self, event: RawEvent) -> None:
        found = await self._emit.decode(event, ProofCheckEvent, "alerts: ")
        if found is None:
            return
        if found.proofs_checked == 0:
            return
        mint_url = normalise_or_strip(found.mint_url)
        await self._send(
            ChecksSignal(
                event_id=found.event_id,
                at=found.checked_at,
                mint_url=mint_url,
                proofs=found.proofs_checked,
                source=_source(event),
            ),
            mint_url,
        )

    async def _send(self, signal: Signal, key: str | None, partition: int | None = None) -> None:
        await self.input.send(
            key=key.encode() if key is not None else None,
            value=signal_bytes(signal),
            partition=partition,
        )

    # --- the alerts agent ------------------------------------------------------------------

    async def handle(self, event: RawEvent) -> None:
        try:
            signal = parse_signal(raw_value(event))
        except ValidationError as exc:
            await self._emit.dead_letter(
                event, ErrorKind.VALIDATION_ERROR, f"{exc.error_count()} errors"
            )
            return
        partition = event.message.partition
        if isinstance(signal, ReceiptSignal):
            with event_context(event):
                self._receipt(signal)
            return
        republish: list[Alert] = []
        resubmit: list[tuple[Alert, list[Receiver]]] = []
        # An alert enters the outbox in the same event (and changelog) that marks it raised, and
        # only then is published: a crash in between leaves it there for the next scan, never
        # "raised" yet nowhere. Delivery starts last and is never awaited.
        with event_context(event):
            outcome = self.engine.handle(signal, partition=partition, wall_ms=to_ms(utcnow()))
            for alert in outcome.alerts:
                self._outbox_add(alert, partition)
            if isinstance(signal, TickSignal) and self._scan_due(partition):
                republish, resubmit = self._outbox_scan(partition)
        self._note(outcome, partition, signal)
        fresh = outcome.alerts + republish
        for alert in fresh:
            await self._publish(alert)
        if fresh:
            with event_context(event):
                for alert in fresh:
                    self._outbox_published(alert.alert_id)
        for alert in outcome.alerts:
            self.deliverer.submit(alert)
        for alert, receivers in resubmit:
            self.deliverer.submit(alert, receivers)

    async def _publish(self, alert: Alert) -> None:
        topic = self._rt.topics["alerts"]
        await topic.send(key=alert.mint_url.encode(), value=to_json_bytes(alert))
        self.metrics.raised.labels(alert.kind.value, alert.severity.value, alert.mint_url).inc()
        log(
            logger,
            logging.WARNING,
            "alert raised",
            alert_id=alert.alert_id,
            kind=alert.kind.value,
            severity=alert.severity.value,
            mint_url=alert.mint_url,
            npub=alert.npub,
            observed=alert.observed,
            threshold=alert.threshold,
        )

    def _note(self, outcome: Outcome, partition: int, signal: Signal) -> None:
        metrics = self.metrics
        for kind, reason in outcome.suppressed:
            metrics.suppressed.labels(kind.value, reason).inc()
        for reason in outcome.dropped:
            metrics.inputs_dropped.labels(reason).inc()
        for mint_url, is_open in outcome.open_incidents.items():
            if is_open:
                self._open_incidents.add(mint_url)
            else:
                self._open_incidents.discard(mint_url)
        if isinstance(signal, TickSignal):
            self._busy[partition] = outcome.busy or self._outbox_has(partition)
        else:
            self._busy[partition] = True

    # --- outbox ----------------------------------------------------------------------------

    def _outbox_add(self, alert: Alert, partition: int) -> None:
        receivers = [r.name for r in self.deliverer.receivers_for(alert.kind)]
        self.outbox.add(alert, partition, receivers)

    def _outbox_published(self, alert_id: str) -> None:
        self.outbox.published(alert_id)

    def _receipt(self, receipt: ReceiptSignal) -> None:
        self.outbox.receipt(receipt.alert_id, receipt.receiver)

    def _scan_due(self, partition: int) -> bool:
        last = self._last_scan.get(partition)
        now = time.monotonic()
        if last is not None and now - last < _OUTBOX_SCAN_S:
            return False
        self._last_scan[partition] = now
        return True

    def _outbox_scan(
        self, partition: int
    ) -> tuple[list[Alert], list[tuple[Alert, list[Receiver]]]]:
        """This partition's leftovers: alerts to publish again, deliveries to resubmit."""
        republish, owed, expired = self.outbox.scan(partition)
        resubmit = []
        for alert, names in owed:
            configured = {r.name: r for r in self.deliverer.receivers_for(alert.kind)}
            waiting = [
                configured[name]
                for name in names
                if name in configured and not self.deliverer.pending(alert.alert_id, name)
            ]
            if waiting:
                resubmit.append((alert, waiting))
        for entry in expired:
            for name in entry["receivers"]:
                self.metrics.deliveries.labels(name, "gave_up").inc()
            log(
                logger, logging.ERROR, "alert delivery gave up", alert_id=entry["alert"]["alert_id"]
            )
        return republish, resubmit

    def _outbox_has(self, partition: int) -> bool:
        # Reads need no event context; only this partition's entries keep its ticks coming.
        return self.outbox.has(partition)

    def _delivered(self, alert: Alert, receiver: Receiver, outcome: str) -> None:
        receipt = ReceiptSignal(
            alert_id=alert.alert_id,
            mint_url=alert.mint_url,
            receiver=receiver.name,
            outcome="delivered" if outcome == "delivered" else "gave_up",
            at=utcnow(),
        )
        self._spawn(self._send(receipt, alert.mint_url))

    # --- timer, health, probes -------------------------------------------------------------

    async def tick(self) -> None:
        name = self.input.get_topic_name()
        at = utcnow()
        for tp in self._rt.app.assignor.assigned_actives():
            if tp.topic == name and self._busy.get(tp.partition, True):
                await self._send(TickSignal(at=at), None, tp.partition)
        self._probe_open_incidents()

    def on_health(self, mint_url: str, old: MintHealth, new: MintHealth) -> None:
        """A gateway's health changed (called inline by the gateway: must not block or raise)."""
        self._report(mint_url, old, new, self._reporter)

    def _report(self, mint_url: str, old: MintHealth, new: MintHealth, reporter: str) -> None:
        url = normalise_or_strip(mint_url)
        signal = HealthSignal(
            event_id=uuid.uuid4().hex,
            at=utcnow(),
            mint_url=url,
            old=old,
            new=new,
            reporter=reporter,
        )
        self._spawn(self._send(signal, url))

    def _probe_open_incidents(self) -> None:
        interval = self.conf.mint_probe_interval_s
        if interval <= 0:
            return
        now = time.monotonic()
        for mint_url in list(self._open_incidents):
            if now - self._last_probe.get(mint_url, -interval) >= interval:
                self._last_probe[mint_url] = now
                self._spawn(self._probe(mint_url))

    async def _probe(self, mint_url: str) -> None:
        """Ask the mint once, through its gateway (circuit, pacing and all). An answer means it
        is back: a circuit that was open closes and reports it; a gateway that saw no failure
        (say, a worker started during the outage) reports nothing, so we report OK ourselves."""
        try:
            gateway = self._rt.gateways.get(mint_url)
            before = gateway.health
            await gateway.check([PROBE_Y], source=Source.SWEEP)
        except MintError:
            return
        self._report(mint_url, before, MintHealth.OK, f"{self._reporter}/probe")

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        try:
            task = asyncio.get_running_loop().create_task(coro)
        except RuntimeError:
            coro.close()  # no loop (a worker shutting down): nothing to report to
            return
        self._tasks.add(task)
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log(
                logger,
                logging.ERROR,
                "alerting background send failed",
                error=type(task.exception()).__name__,
            )

    async def close(self) -> None:
        await self.deliverer.close()


def _source(event: RawEvent) -> SourceRef:
    message = event.message
    return SourceRef(topic=message.topic, partition=message.partition, offset=message.offset)


def register(runtime: Runtime) -> Alerting | None:
    """Register the forwarders, the alerts agent, the tick timer and the health listener."""
    if not runtime.settings.alerts.enabled:
        return None
    alerting = Alerting(runtime)
    runtime.gateways.add_health_listener(alerting.on_health)
    runtime.closables.append(alerting)
    app = runtime.app

    @app.agent(runtime.topics["discrepancies"], name="alerts-forward-discrepancies", concurrency=1)
    async def forward_discrepancies(stream: RawStream) -> None:
        await run_guarded(runtime, stream, alerting.forward_discrepancy, "alerts (discrepancies)")

    @app.agent(runtime.topics["proof_checks"], name="alerts-forward-checks", concurrency=1)
    async def forward_checks(stream: RawStream) -> None:
        await run_guarded(runtime, stream, alerting.forward_checks, "alerts (proof checks)")

    @app.agent(alerting.input, name="alerts", concurrency=1)
    async def alerts_agent(stream: RawStream) -> None:
        await run_guarded(runtime, stream, alerting.handle, "alerts")

    @app.timer(runtime.settings.alerts.tick_interval_s, on_leader=False)  # type: ignore[untyped-decorator]
    async def alerts_tick() -> None:
        try:
            await alerting.tick()
        except Exception:
            logger.exception("alerting tick failed")

    return alerting
