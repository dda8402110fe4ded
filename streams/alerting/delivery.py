"""Webhook delivery: one in-memory queue and sender task per receiver; `submit` never waits.

A receiver's alerts go out in order; while it fails they wait and are retried with jittered
exponential backoff, which delays that receiver only: neither the alerts agent nor any other
receiver waits on it. Transport errors, timeouts, 408/425/429 and 5xx are retried until the alert
is `webhook_give_up_after_s` old; other 4xx answers mean the payload will never be accepted, and
the alert is given up at once. Every outcome is counted in metrics and logged.

Receivers are named without their URL's path or credentials (chat webhooks carry their secret in
the path): `format:host:port#hash`. Logs never hold a URL or a payload.

Delivery state is in memory; `on_done` reports each final outcome, and the agent keeps a durable
outbox from those reports, so alerts still undelivered when a worker stops are resubmitted after
it restarts.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Literal
from urllib.parse import urlsplit

import httpx

from streams.alerting.metrics import AlertMetrics
from streams.alerting.payloads import alertmanager_payload, alertmanager_url, json_payload
from streams.core.contracts import Alert
from streams.core.domain import AlertKind
from streams.core.logs import log
from streams.core.settings import AlertSettings

logger = logging.getLogger("proofrecon.alerts.delivery")

Outcome = Literal["delivered", "gave_up"]
DoneCallback = Callable[[Alert, "Receiver", Outcome], None]
_RETRYABLE_STATUS = frozenset({408, 425, 429})


class WebhookFormat(StrEnum):
    ALERTMANAGER = "alertmanager"
    JSON = "json"


@dataclass(frozen=True, slots=True)
class Receiver:
    url: str
    format: WebhookFormat

    @property
    def name(self) -> str:
        parts = urlsplit(self.url)
        port = f":{parts.port}" if parts.port else ""
        digest = hashlib.sha256(f"{self.format}|{self.url}".encode()).hexdigest()[:8]
        return f"{self.format.value}:{parts.hostname or '?'}{port}#{digest}"

    @property
    def endpoint(self) -> str:
        if self.format is WebhookFormat.ALERTMANAGER:
            return alertmanager_url(self.url)
        return self.url


def routes(conf: AlertSettings) -> dict[AlertKind, tuple[Receiver, ...]]:
    """The receivers of each alert kind: its own webhook if set (empty: none), else the default."""
    table: dict[AlertKind, tuple[Receiver, ...]] = {}
    for kind in AlertKind:
        url = conf.webhook_urls.get(kind, conf.webhook_url)
        fmt = WebhookFormat(conf.webhook_formats.get(kind, conf.webhook_format))
        table[kind] = (Receiver(url, fmt),) if url else ()
    return table


def backoff_delay(attempt: int, conf: AlertSettings, rng: random.Random) -> float:
    """Exponential, capped, with "equal jitter": between half and all of the capped step, so
    receivers recovering together are not hit by every worker at the same instant."""
    step = min(conf.webhook_backoff_max_s, conf.webhook_backoff_initial_s * 2.0 ** min(attempt, 30))
    return step / 2 + rng.uniform(0, step / 2)


@dataclass(slots=True)
class _Item:
    alert: Alert
    enqueued: float
    test: bool


@dataclass(slots=True)
class _Lane:
    receiver: Receiver
    queue: asyncio.Queue[_Item]
    task: asyncio.Task[None]


class Deliverer:
    def __init__(
        self,
        conf: AlertSettings,
        *,
        generator_url: str,
        metrics: AlertMetrics | None = None,
        on_done: DoneCallback | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        rng: random.Random | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.conf = conf
        self._generator_url = generator_url
        self._metrics = metrics
        self._on_done = on_done
        self._transport = transport
        self._rng = rng or random.Random()
        self._clock = clock
        self._routes = routes(conf)
        self._lanes: dict[str, _Lane] = {}
        self._in_flight: set[tuple[str, str]] = set()
        self._client: httpx.AsyncClient | None = None
        self._idle = asyncio.Event()
        self._idle.set()

    def receivers_for(self, kind: AlertKind) -> tuple[Receiver, ...]:
        return self._routes[kind]

    def pending(self, alert_id: str, receiver: str) -> bool:
        return (alert_id, receiver) in self._in_flight

    def submit(
        self, alert: Alert, receivers: Sequence[Receiver] | None = None, *, test: bool = False
    ) -> list[Receiver]:
        """Queue `alert` for its receivers (default: its kind's); returns those it was queued for.

        Never blocks, never raises. A full queue leaves the alert out (counted and logged); the
        agent's outbox resubmits it later.
        """
        queued = []
        for receiver in self.receivers_for(alert.kind) if receivers is None else receivers:
            key = (alert.alert_id, receiver.name)
            if key in self._in_flight:
                continue
            lane = self._lane(receiver)
            try:
                lane.queue.put_nowait(_Item(alert, self._clock(), test))
            except asyncio.QueueFull:
                self._count(receiver, "queue_full")
                log(
                    logger,
                    logging.WARNING,
                    "alert delivery queue full; the alert waits in the outbox",
                    receiver=receiver.name,
                    alert_id=alert.alert_id,
                )
                continue
            self._in_flight.add(key)
            self._idle.clear()
            self._gauge(lane)
            queued.append(receiver)
        return queued

    async def wait_idle(self, timeout: float) -> bool:
        """Wait until nothing is queued or being retried; False if `timeout` passed first."""
        try:
            await asyncio.wait_for(self._idle.wait(), timeout)
        except TimeoutError:
            return False
        return True

    async def close(self) -> None:
        lanes, self._lanes = list(self._lanes.values()), {}
        for lane in lanes:
            lane.task.cancel()
        await asyncio.gather(*(lane.task for lane in lanes), return_exceptions=True)
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    # --- sending ---------------------------------------------------------------------------

    def _lane(self, receiver: Receiver) -> _Lane:
        lane = self._lanes.get(receiver.name)
        if lane is None:
            queue: asyncio.Queue[_Item] = asyncio.Queue(self.conf.webhook_queue_size)
            task = asyncio.get_running_loop().create_task(self._run(receiver, queue))
            lane = self._lanes[receiver.name] = _Lane(receiver, queue, task)
        return lane

    async def _run(self, receiver: Receiver, queue: asyncio.Queue[_Item]) -> None:
        batch_max = (
            self.conf.webhook_batch_max if receiver.format is WebhookFormat.ALERTMANAGER else 1
        )
        while True:
            batch = [await queue.get()]
            while len(batch) < batch_max and not queue.empty():
                batch.append(queue.get_nowait())
            try:
                outcome = await self._deliver(receiver, batch)
            except Exception:  # a bug here must not kill the lane: give the batch up, go on
                logger.exception("alert delivery failed unexpectedly")
                outcome = "gave_up"
            for item in batch:
                self._finish(item.alert, receiver, outcome)
            lane = self._lanes.get(receiver.name)
            if lane is not None:
                self._gauge(lane)

    async def _deliver(self, receiver: Receiver, batch: list[_Item]) -> Outcome:
        attempt = 0
        oldest = min(item.enqueued for item in batch)
        while True:
            failure = await self._post(receiver, batch)
            if failure is None:
                self._count(receiver, "delivered", len(batch))
                return "delivered"
            retryable, what = failure
            fields: dict[str, Any] = {
                "receiver": receiver.name,
                "alert_ids": [item.alert.alert_id for item in batch[:10]],
                "error": what,
                "attempt": attempt + 1,
            }
            if not retryable or self._clock() - oldest >= self.conf.webhook_give_up_after_s:
                self._count(receiver, "gave_up", len(batch))
                log(logger, logging.ERROR, "alert delivery gave up", **fields)
                return "gave_up"
            delay = backoff_delay(attempt, self.conf, self._rng)
            attempt += 1
            self._count(receiver, "retry")
            log(
                logger,
                logging.WARNING,
                "alert delivery failed; retrying",
                retry_in_s=round(delay, 3),
                **fields,
            )
            await asyncio.sleep(delay)

    async def _post(self, receiver: Receiver, batch: list[_Item]) -> tuple[bool, str] | None:
        """None when the receiver accepted; else (retryable, what went wrong)."""
        body: Any
        if receiver.format is WebhookFormat.ALERTMANAGER:
            body = alertmanager_payload(
                [item.alert for item in batch],
                self.conf,
                generator_url=self._generator_url,
                test=batch[0].test,
            )
            headers = {}
        else:
            body = json_payload(batch[0].alert)
            headers = {"Idempotency-Key": batch[0].alert.alert_id}
        try:
            response = await self._http().post(receiver.endpoint, json=body, headers=headers)
        except httpx.HTTPError as exc:
            return True, type(exc).__name__
        status = response.status_code
        if 200 <= status < 300:
            return None
        return (status in _RETRYABLE_STATUS or status >= 500), f"HTTP {status}"

    def _http(self) -> httpx.AsyncClient:
        if self._client is None:
            self._client = httpx.AsyncClient(
                timeout=self.conf.webhook_timeout_s,
                transport=self._transport,
                follow_redirects=False,
                headers={"User-Agent": "proofrecon-alerts"},
            )
        return self._client

    def _finish(self, alert: Alert, receiver: Receiver, outcome: Outcome) -> None:
        self._in_flight.discard((alert.alert_id, receiver.name))
        if not self._in_flight:
            self._idle.set()
        if self._on_done is not None:
            try:
                self._on_done(alert, receiver, outcome)
            except Exception:
                logger.exception("alert delivery callback failed")

    def _count(self, receiver: Receiver, outcome: str, n: int = 1) -> None:
        if self._metrics is not None:
            self._metrics.deliveries.labels(receiver.name, outcome).inc(n)

    def _gauge(self, lane: _Lane) -> None:
        if self._metrics is not None:
            self._metrics.delivery_queue.labels(lane.receiver.name).set(lane.queue.qsize())
