"""Webhook delivery over an in-process HTTP transport: retries, give-up, batching, no blocking."""

from __future__ import annotations

import asyncio
import json
import random
import time
from datetime import UTC, datetime
from typing import Any

import httpx
from hypothesis import given
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry

from streams.alerting.delivery import Deliverer, Receiver, WebhookFormat, backoff_delay, routes
from streams.alerting.metrics import AlertMetrics
from streams.core.contracts import Alert
from streams.core.domain import AlertKind, Severity
from streams.core.settings import AlertSettings

AM = "http://am.example:9093"


def conf(**fields: Any) -> AlertSettings:
    base: dict[str, Any] = {
        "webhook_url": AM,
        "webhook_urls": {},
        "webhook_formats": {},
        "webhook_backoff_initial_s": 0.01,
        "webhook_backoff_max_s": 0.05,
    }
    return AlertSettings(**{**base, **fields})


def alert(n: int = 1, kind: AlertKind = AlertKind.HIGH_SEVERITY) -> Alert:
    return Alert(
        alert_id=f"alert-{n}",
        kind=kind,
        severity=Severity.HIGH,
        mint_url="https://mint.example",
        npub="npub1a",
        message=f"{n} HIGH severity discrepancies",
        observed=n,
        raised_at=datetime(2026, 3, 2, tzinfo=UTC),
    )


class Receiving:
    """A scripted receiver: answers `statuses` in turn (then 200), records each request."""

    def __init__(self, *statuses: int, delay_s: float = 0.0) -> None:
        self.statuses = list(statuses)
        self.delay_s = delay_s
        self.requests: list[httpx.Request] = []

    async def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        if self.delay_s:
            await asyncio.sleep(self.delay_s)
        return httpx.Response(self.statuses.pop(0) if self.statuses else 200)

    def bodies(self) -> list[Any]:
        return [json.loads(r.content) for r in self.requests]


def deliverer(
    receiving: Receiving, outcomes: list[tuple[str, str]], **fields: Any
) -> tuple[Deliverer, AlertMetrics]:
    metrics = AlertMetrics(CollectorRegistry())
    d = Deliverer(
        conf(**fields),
        generator_url="http://worker:6066/metrics",
        metrics=metrics,
        on_done=lambda a, r, outcome: outcomes.append((a.alert_id, outcome)),
        transport=httpx.MockTransport(receiving),
        rng=random.Random(1),
    )
    return d, metrics


def counted(metrics: AlertMetrics, outcome: str) -> float:
    total = 0.0
    for metric in metrics.deliveries.collect():
        for sample in metric.samples:
            if sample.name.endswith("_total") and sample.labels["outcome"] == outcome:
                total += sample.value
    return total


async def test_failures_are_retried_with_backoff_until_delivered() -> None:
    receiving, outcomes = Receiving(503, 500, 429), []
    d, metrics = deliverer(receiving, outcomes)
    d.submit(alert())
    assert await d.wait_idle(5)
    await d.close()
    assert outcomes == [("alert-1", "delivered")]
    assert len(receiving.requests) == 4
    assert {str(r.url) for r in receiving.requests} == {f"{AM}/api/v2/alerts"}
    assert (counted(metrics, "retry"), counted(metrics, "delivered")) == (3, 1)


async def test_a_rejected_payload_is_given_up_at_once() -> None:
    receiving, outcomes = Receiving(400), []
    d, metrics = deliverer(receiving, outcomes)
    d.submit(alert())
    assert await d.wait_idle(5)
    await d.close()
    assert outcomes == [("alert-1", "gave_up")] and len(receiving.requests) == 1
    assert counted(metrics, "gave_up") == 1


async def test_a_receiver_down_for_too_long_is_given_up() -> None:
    receiving, outcomes = Receiving(*[503] * 1000), []
    d, _ = deliverer(receiving, outcomes, webhook_give_up_after_s=0.3)
    d.submit(alert())
    assert await d.wait_idle(5)
    await d.close()
    assert outcomes == [("alert-1", "gave_up")] and len(receiving.requests) > 2


async def test_submit_never_waits_on_a_hanging_receiver() -> None:
    receiving, outcomes = Receiving(delay_s=30), []
    d, _ = deliverer(receiving, outcomes, webhook_queue_size=2, webhook_batch_max=1)
    started = time.perf_counter()
    queued = [len(d.submit(alert(n))) for n in range(1, 6)]
    assert time.perf_counter() - started < 0.05
    await asyncio.sleep(0.05)  # the lane took the first alert and hangs on it
    queued.append(len(d.submit(alert(6))))
    # One in flight, two queued, the rest left for the outbox; the same alert is never doubled.
    assert queued == [1, 1, 0, 0, 0, 1]
    assert d.submit(alert(1)) == []
    await d.close()


async def test_alertmanager_gets_one_batch_json_gets_one_post_per_alert() -> None:
    am, hook, outcomes = Receiving(), Receiving(), []
    transport = httpx.MockTransport(lambda r: am(r) if r.url.host == "am.example" else hook(r))
    d = Deliverer(
        conf(
            webhook_urls={AlertKind.ANOMALY: "https://hook.example/services/T0/B0/SECRET"},
            webhook_formats={AlertKind.ANOMALY: "json"},
        ),
        generator_url="http://w/",
        on_done=lambda a, r, o: outcomes.append((a.alert_id, o)),
        transport=transport,
    )
    for n in (1, 2, 3):
        d.submit(alert(n))
    d.submit(alert(9, AlertKind.ANOMALY))
    assert await d.wait_idle(5)
    await d.close()
    (batch,) = am.bodies()
    assert [a["annotations"]["alert_id"] for a in batch] == ["alert-1", "alert-2", "alert-3"]
    (body,) = hook.bodies()
    assert body["alert_id"] == "alert-9" and body["kind"] == "ANOMALY"
    assert hook.requests[0].headers["Idempotency-Key"] == "alert-9"
    assert sorted(outcomes) == [(f"alert-{n}", "delivered") for n in (1, 2, 3, 9)]


def test_routes_per_kind_override_disable_and_names_hide_secrets() -> None:
    table = routes(
        conf(
            webhook_urls={
                AlertKind.ANOMALY: "",
                AlertKind.HIGH_SEVERITY: "https://user:pw@hooks.example/services/T0/B0/SECRET",
            },
            webhook_formats={AlertKind.HIGH_SEVERITY: "json"},
        )
    )
    assert table[AlertKind.ANOMALY] == ()
    assert table[AlertKind.RATE_THRESHOLD] == (Receiver(AM, WebhookFormat.ALERTMANAGER),)
    (high,) = table[AlertKind.HIGH_SEVERITY]
    assert high.format is WebhookFormat.JSON
    assert high.name.startswith("json:hooks.example#")
    assert "SECRET" not in high.name and "pw" not in high.name
    assert table[AlertKind.RATE_THRESHOLD][0].name.startswith("alertmanager:am.example:9093#")


@given(st.integers(min_value=0, max_value=100), st.integers(min_value=0, max_value=2**32))
def test_backoff_is_jittered_exponential_and_capped(attempt: int, seed: int) -> None:
    c = conf(webhook_backoff_initial_s=0.5, webhook_backoff_max_s=30)
    step = min(30.0, 0.5 * 2 ** min(attempt, 30))
    assert step / 2 <= backoff_delay(attempt, c, random.Random(seed)) <= step
