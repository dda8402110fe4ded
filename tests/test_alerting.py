"""Alerting end to end (issue 6): real Kafka, real mints, the worker as a subprocess.

Synthetic discrepancy and proof-check events are published straight to their topics with chosen
timestamps, so windows and baselines are exact and fast (event time, not the wall clock). The
HIGH burst is a real melt against the stack's mint; MINT_UNAVAILABLE stops and restarts a mint of
the test's own (never the stack's on 3338). Webhooks go to a local receiver (AlertReceiver).
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.errors import KafkaError
from aiokafka.structs import OffsetAndMetadata

from devkit.mints import MintServer
from devkit.processes import WorkerProcess, read_topic
from devkit.wallet import CashuWallet, WalletProof
from streams.client import PreflightClient
from streams.core.cashu import y_from_secret
from streams.core.contracts import (
    DiscrepancyEvent,
    MeltRequest,
    ProofCheckEvent,
    parse_melt_request,
    to_json_bytes,
)
from streams.core.domain import Action, DbStatus, DiscrepancyType, MintState, Severity, Source
from streams.core.settings import Settings
from tests.conftest import MINT_URL, build_test_settings, clear_proofrecon_env
from tests.support.alert_receiver import AlertReceiver
from tests.support.pipeline import ask, melt, npub, publish_token

pytestmark = pytest.mark.stack

RATE_MINT = "https://mint-rate.alerts.test"
SPIKE_MINT = "https://mint-spike.alerts.test"
STEADY_MINT = "https://mint-steady.alerts.test"
HOOK_MINT = "https://mint-hook.alerts.test"

FAST_RETRIES = {"webhook_backoff_initial_s": 0.2, "webhook_backoff_max_s": 1.0}


# --- fixtures -------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def receiver() -> Iterator[AlertReceiver]:
    with AlertReceiver() as r:
        yield r


@pytest.fixture(scope="module")
def flaky_mint(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MintServer]:
    with MintServer(tmp_path_factory.mktemp("flaky-mint")) as server:
        yield server


@pytest.fixture(scope="module")
def alert_settings(
    tmp_path_factory: pytest.TempPathFactory, flaky_mint: MintServer, receiver: AlertReceiver
) -> Iterator[Settings]:
    with pytest.MonkeyPatch.context() as mp:
        clear_proofrecon_env(mp)
        yield build_test_settings(
            uuid.uuid4().hex[:10],
            tmp_path_factory.mktemp("alerting") / "data",
            sweep={"enabled": False},
            mint={
                "allowlist": [MINT_URL, flaky_mint.url],
                "breaker_failures": 2,
                "breaker_cooldown_s": 1.0,
                "max_retries": 0,
                "request_timeout_s": 1.0,
                "default_deadline_ms": 1500,
            },
            alerts={
                "webhook_url": receiver.url,
                "high_gather_s": 1.5,
                "rate_threshold_medium": 20,
                "rate_threshold_low": 0,  # the anomaly tests use LOW: no threshold alerts there
                "anomaly_warmup_windows": 4,
                "anomaly_min_count": 5,
                "mint_probe_interval_s": 1.0,
                "mint_flap_cooldown_s": 0,
                **FAST_RETRIES,
            },
        )


@pytest.fixture(scope="module")
def worker(
    alert_settings: Settings, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[WorkerProcess]:
    process = WorkerProcess(alert_settings, tmp_path_factory.mktemp("log") / "worker.log").start()
    yield process
    process.stop()


@pytest.fixture(scope="module")
def fifty_spent(mint_url: str, tmp_path_factory: pytest.TempPathFactory) -> list[WalletProof]:
    """50 proofs redeemed by a second wallet: SPENT at the mint, unspent in the first."""
    wallet = CashuWallet(mint_url, tmp_path_factory.mktemp("wallet50"))
    return wallet.scenario(spent_elsewhere=50, amount=1).spent_elsewhere


@pytest.fixture
async def client(alert_settings: Settings, worker: WorkerProcess) -> AsyncIterator[PreflightClient]:
    async with PreflightClient(alert_settings) as c:
        yield c


# --- helpers --------------------------------------------------------------------------------------


def discrepancies(
    *,
    mint_url: str,
    severity: Severity,
    at: datetime,
    npubs: list[str],
    n: int,
    spacing: timedelta = timedelta(0),
) -> list[DiscrepancyEvent]:
    tag = uuid.uuid4().hex[:8]
    return [
        DiscrepancyEvent(
            event_id=f"syn-{tag}-{i}",
            detected_at=at + spacing * i,
            npub=npubs[i % len(npubs)],
            mint_url=mint_url,
            token_id=None,
            Y=y_from_secret(f"alerting-{tag}-{i}"),
            amount=1,
            keyset_id="00ab",
            type=DiscrepancyType.DB_UNSPENT_MINT_SPENT,
            severity=severity,
            db_status=DbStatus.UNSPENT,
            mint_state=MintState.SPENT,
            action=Action.MARK_SPENT,
            source=Source.PREFLIGHT,
            request_id=f"req-{tag}",
        )
        for i in range(n)
    ]


def proof_check(mint_url: str, at: datetime, proofs: int) -> ProofCheckEvent:
    return ProofCheckEvent(
        event_id=f"chk-{uuid.uuid4().hex}",
        checked_at=at,
        mint_url=mint_url,
        source=Source.PREFLIGHT,
        proofs_checked=proofs,
    )


async def publish(
    settings: Settings,
    events: Sequence[DiscrepancyEvent] = (),
    checks: Sequence[ProofCheckEvent] = (),
) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka.bootstrap_servers)
    await producer.start()
    try:
        for event in events:
            await producer.send(
                settings.topics.discrepancies, key=event.npub.encode(), value=to_json_bytes(event)
            )
        for check in checks:
            await producer.send(
                settings.topics.proof_checks,
                key=check.mint_url.encode(),
                value=to_json_bytes(check),
            )
        await producer.flush()
    finally:
        await producer.stop()


async def alerts_where(
    settings: Settings, match: Callable[[dict[str, Any]], bool], count: int, timeout: float = 30
) -> list[dict[str, Any]]:
    """Wait for `count` matching alerts; then listen a while longer and return all matches, so a
    caller asserting "exactly one" would see a second one."""
    await read_topic(
        settings,
        settings.topics.alerts,
        until=lambda rs: sum(map(match, rs)) >= count,
        timeout=timeout,
    )
    return [r for r in await read_topic(settings, settings.topics.alerts, idle=2.5) if match(r)]


def random_melt(mint_url: str) -> MeltRequest:
    """A melt of one proof nobody holds: the mint answers UNSPENT (PROOF_NOT_IN_DB, cleared)."""
    body = {
        "request_id": f"req-{uuid.uuid4().hex}",
        "npub": npub(),
        "mint_url": mint_url,
        "proofs": [{"Y": y_from_secret(uuid.uuid4().hex), "amount": 1, "keyset_id": "00ab"}],
        "requested_at": datetime.now(UTC).isoformat(),
    }
    return parse_melt_request(json.dumps(body).encode())


class Forwarded:
    """Counts what the forwarders put on alerts-input, per mint: a test-side barrier that keeps
    synthetic hours in order across the two source topics."""

    def __init__(self, settings: Settings) -> None:
        self._consumer = AIOKafkaConsumer(
            settings.topics.alerts_input,
            bootstrap_servers=settings.kafka.bootstrap_servers,
            group_id=None,
            auto_offset_reset="earliest",
        )
        self.counts: dict[tuple[str, str], int] = {}

    async def __aenter__(self) -> Forwarded:
        await self._consumer.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._consumer.stop()

    async def wait(self, expected: dict[tuple[str, str], int], timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while not all(self.counts.get(k, 0) >= n for k, n in expected.items()):
            if time.monotonic() > deadline:
                raise AssertionError(f"forwarded {self.counts}, expected {expected}")
            for records in (await self._consumer.getmany(timeout_ms=200)).values():
                for record in records:
                    signal = json.loads(record.value)
                    key = (signal.get("mint_url", ""), signal["kind"])
                    self.counts[key] = self.counts.get(key, 0) + 1


async def metric(worker: WorkerProcess, name: str, **labels: str) -> float:
    async with httpx.AsyncClient(timeout=5) as http:
        text = (await http.get(f"{worker.url}/metrics")).text
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name + "{") and all(f'{k}="{v}"' in line for k, v in labels.items()):
            total += float(line.rsplit(" ", 1)[1])
    return total


# --- HIGH_SEVERITY --------------------------------------------------------------------------------


async def test_fifty_high_in_one_melt_are_one_alert_another_npub_gets_its_own(
    alert_settings: Settings,
    worker: WorkerProcess,
    client: PreflightClient,
    fifty_spent: list[WalletProof],
) -> None:
    owner, other = npub(), npub()
    await publish_token(alert_settings, worker, owner, fifty_spent, "unspent")
    await publish_token(alert_settings, worker, other, fifty_spent[:3], "unspent")
    first = await ask(client, melt(owner, fifty_spent))
    second = await ask(client, melt(other, fifty_spent[:3]))
    assert (first.code, second.code) == ("HIGH_SEVERITY_DISCREPANCIES",) * 2
    assert (first.severity_counts.high, second.severity_counts.high) == (50, 3)

    alerts = await alerts_where(
        alert_settings, lambda a: a["npub"] in (owner, other), count=2, timeout=30
    )
    assert sorted((a["npub"] == owner, a["kind"], a["observed"]) for a in alerts) == [
        (False, "HIGH_SEVERITY", 3),
        (True, "HIGH_SEVERITY", 50),
    ]
    mine = next(a for a in alerts if a["npub"] == owner)
    assert mine["severity"] == "HIGH" and mine["mint_url"] == MINT_URL
    assert first.request_id in mine["message"] and "50 HIGH" in mine["message"]
    # No proof data in an alert: not a Y, let alone a secret.
    text = json.dumps(alerts)
    assert not any(p.Y in text or p.secret in text for p in fifty_spent)


# --- RATE_THRESHOLD -------------------------------------------------------------------------------


async def test_rate_threshold_crossed_in_one_window_is_exactly_one_alert(
    alert_settings: Settings, worker: WorkerProcess
) -> None:
    start = datetime(2026, 1, 5, 10, 0, tzinfo=UTC)
    npubs = [npub() for _ in range(3)]  # the count is per mint, across npubs and partitions
    window = discrepancies(
        mint_url=RATE_MINT,
        severity=Severity.MEDIUM,
        at=start,
        npubs=npubs,
        n=45,
        spacing=timedelta(seconds=50),
    )
    await publish(alert_settings, window)
    alerts = await alerts_where(alert_settings, lambda a: a["mint_url"] == RATE_MINT, count=1)
    (alert,) = alerts
    assert (alert["kind"], alert["severity"], alert["observed"], alert["threshold"]) == (
        "RATE_THRESHOLD",
        "MEDIUM",
        20,
        20,
    )
    assert alert["window_start"] == "2026-01-05T10:00:00.000Z"
    assert alert["window_end"] == "2026-01-05T11:00:00.000Z"
    # The next window stays under the threshold: nothing more.
    after = discrepancies(
        mint_url=RATE_MINT,
        severity=Severity.MEDIUM,
        at=start + timedelta(hours=1, minutes=5),
        npubs=npubs,
        n=19,
    )
    await publish(alert_settings, after)
    assert len(await alerts_where(alert_settings, lambda a: a["mint_url"] == RATE_MINT, 1)) == 1


# --- ANOMALY --------------------------------------------------------------------------------------


async def test_steady_hours_then_a_spike_is_one_anomaly_steady_alone_is_none(
    alert_settings: Settings, worker: WorkerProcess
) -> None:
    start = datetime(2026, 1, 6, 0, 0, tzinfo=UTC)
    history = {
        SPIKE_MINT: [5, 6, 4, 5, 5, 6, 60],
        STEADY_MINT: [5, 6, 4, 5, 5, 6, 5],
    }
    npubs = [npub() for _ in range(4)]
    expected: dict[tuple[str, str], int] = {}
    async with Forwarded(alert_settings) as forwarded:
        for hour in range(7):
            at = start + timedelta(hours=hour, minutes=10)
            events, checks = [], []
            for mint_url, counts in history.items():
                events += discrepancies(
                    mint_url=mint_url, severity=Severity.LOW, at=at, npubs=npubs, n=counts[hour]
                )
                checks.append(proof_check(mint_url, at, 1000))
                expected[(mint_url, "discrepancy")] = expected.get((mint_url, "discrepancy"), 0)
                expected[(mint_url, "discrepancy")] += counts[hour]
                expected[(mint_url, "checks")] = hour + 1
            await publish(alert_settings, events, checks)
            # Hours go through two topics and many partitions: keep them in order.
            await forwarded.wait(expected)
    # Event time two hours after the spike closes its window (no wall clock involved).
    closing = start + timedelta(hours=9)
    await publish(alert_settings, checks=[proof_check(m, closing, 1) for m in history])

    def anomaly(a: dict[str, Any]) -> bool:
        return a["kind"] == "ANOMALY" and a["mint_url"] in history

    (alert,) = await alerts_where(alert_settings, anomaly, count=1)
    assert (alert["mint_url"], alert["severity"], alert["observed"]) == (SPIKE_MINT, "LOW", 60)
    assert alert["window_start"] == "2026-01-06T06:00:00.000Z"
    assert 5 < alert["threshold"] < 10  # the baseline (~5 per 1,000) plus three deviations
    assert not [
        a
        for a in await read_topic(alert_settings, alert_settings.topics.alerts, idle=1)
        if a["mint_url"] == STEADY_MINT
    ]


# --- MINT_UNAVAILABLE -----------------------------------------------------------------------------


async def test_mint_stopped_is_unavailable_and_restarted_is_recovered(
    alert_settings: Settings,
    worker: WorkerProcess,
    client: PreflightClient,
    flaky_mint: MintServer,
    receiver: AlertReceiver,
) -> None:
    url = flaky_mint.url
    assert (await ask(client, random_melt(url))).operation_cleared
    flaky_mint.stop()
    try:
        for _ in range(3):  # two failures open its circuit
            result = await ask(client, random_melt(url))
            assert (result.verdict, result.code) == ("BLOCKED", "MINT_UNAVAILABLE")

        def outage(a: dict[str, Any]) -> bool:
            return a["kind"] == "MINT_UNAVAILABLE" and a["mint_url"] == url

        (down,) = await alerts_where(alert_settings, outage, count=1)
        assert down["window_end"] is None and down["severity"] == "HIGH"
        assert "circuit opened" in down["message"]
    finally:
        flaky_mint.start()
    # No melt needed: while the incident is open the worker probes the mint, and it answers.
    alerts = await alerts_where(alert_settings, outage, count=2)
    assert len(alerts) == 2
    up = next(a for a in alerts if a["window_end"] is not None)
    assert up["window_start"] == down["window_start"] and "recovered" in up["message"]
    # Alertmanager sees the outage and its recovery as one alert: same labels, then an end.
    posted = await receiver.wait_for(
        lambda al: len([a for a in al if a["labels"].get("mint_url") == url]) >= 2
    )
    fired, resolved = (a for a in posted if a["labels"].get("mint_url") == url)
    assert fired["labels"] == resolved["labels"]
    assert fired["labels"]["alertname"] == "ProofreconMintUnavailable"
    assert resolved["endsAt"] == up["window_end"] and fired["endsAt"] > resolved["endsAt"]


# --- delivery -------------------------------------------------------------------------------------


async def test_alertmanager_post_has_the_right_labels_and_a_failing_receiver_stalls_nothing(
    alert_settings: Settings,
    worker: WorkerProcess,
    client: PreflightClient,
    receiver: AlertReceiver,
) -> None:
    receiver.failing = True
    rejected_before = receiver.rejected()
    first, second = npub(), npub()
    now = datetime.now(UTC)
    await publish(
        alert_settings,
        discrepancies(mint_url=HOOK_MINT, severity=Severity.HIGH, at=now, npubs=[first], n=4),
    )
    await alerts_where(alert_settings, lambda a: a["npub"] == first, count=1, timeout=15)
    # The receiver fails, and processing goes on: a melt is answered at once, and the next
    # HIGH discrepancies raise their alert on the topic as fast as the first did.
    started = time.monotonic()
    answer = await ask(client, random_melt(MINT_URL))
    assert answer.operation_cleared and time.monotonic() - started < 3
    await publish(
        alert_settings,
        discrepancies(mint_url=HOOK_MINT, severity=Severity.HIGH, at=now, npubs=[second], n=2),
    )
    raised = await alerts_where(alert_settings, lambda a: a["mint_url"] == HOOK_MINT, count=2)
    deadline = time.monotonic() + 15
    while receiver.rejected() < rejected_before + 2 and time.monotonic() < deadline:
        await asyncio.sleep(0.2)
    assert receiver.rejected() >= rejected_before + 2  # it was asked, and asked again
    assert not [a for a in receiver.alertmanager_alerts() if a["labels"]["mint_url"] == HOOK_MINT]

    receiver.failing = False
    posted = await receiver.wait_for(
        lambda al: {first, second} <= {a["labels"].get("npub") for a in al}, timeout=30
    )
    mine = next(a for a in posted if a["labels"].get("npub") == first)
    assert mine["labels"] == {
        "alertname": "ProofreconHighSeverityDiscrepancies",
        "service": "proofrecon",
        "kind": "HIGH_SEVERITY",
        "severity": "critical",
        "discrepancy_severity": "HIGH",
        "mint_url": HOOK_MINT,
        "npub": first,
    }
    by_id = {a["alert_id"]: a for a in raised}
    assert mine["annotations"]["alert_id"] in by_id
    assert mine["annotations"]["observed"] == "4"
    assert mine["startsAt"] < mine["endsAt"]
    assert mine["generatorURL"].startswith("http://")
    assert await metric(worker, "proofrecon_alert_deliveries_total", outcome="retry") >= 2
    assert await metric(worker, "proofrecon_alert_deliveries_total", outcome="delivered") >= 2


# --- replay ---------------------------------------------------------------------------------------


async def reset_offsets(settings: Settings, topics: list[str]) -> None:
    """Rewind the worker's consumer group to the start of `topics` (the worker is stopped)."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=settings.kafka.bootstrap_servers,
        group_id=settings.kafka.app_id,
        enable_auto_commit=False,
    )
    await consumer.start()
    try:
        tps = [TopicPartition(t, p) for t in topics for p in range(settings.topics.partitions)]
        consumer.assign(tps)
        for attempt in range(20):  # the stopped worker's group may take a moment to empty
            try:
                await consumer.commit({tp: OffsetAndMetadata(0, "") for tp in tps})
                return
            except KafkaError:
                if attempt == 19:
                    raise
                await asyncio.sleep(0.5)
    finally:
        await consumer.stop()


async def test_replaying_the_discrepancy_topic_raises_no_duplicate_alerts(
    make_settings: Callable[..., Settings], tmp_path: Any
) -> None:
    with AlertReceiver() as rx:
        rx.failing = True  # nothing gets through before the restart: the outbox carries it over
        settings = make_settings(
            sweep={"enabled": False},
            alerts={
                "webhook_url": rx.url,
                "high_gather_s": 1.0,
                "rate_threshold_medium": 10,
                **FAST_RETRIES,
            },
        )
        process = WorkerProcess(settings, tmp_path / "worker.log").start()
        try:
            now = datetime.now(UTC)
            a, b = npub(), npub()
            events = discrepancies(
                mint_url=HOOK_MINT, severity=Severity.HIGH, at=now, npubs=[a], n=5
            )
            events += discrepancies(
                mint_url=HOOK_MINT, severity=Severity.HIGH, at=now, npubs=[b], n=2
            )
            events += discrepancies(
                mint_url=RATE_MINT, severity=Severity.MEDIUM, at=now, npubs=[a, b], n=12
            )
            checks = [proof_check(HOOK_MINT, now, 100), proof_check(RATE_MINT, now, 100)]
            await publish(settings, events, checks)
            before = await alerts_where(settings, lambda r: True, count=3)
            assert sorted((r["kind"], r["observed"]) for r in before) == [
                ("HIGH_SEVERITY", 2),
                ("HIGH_SEVERITY", 5),
                ("RATE_THRESHOLD", 10),
            ]
            process.stop()
            await reset_offsets(
                settings, [settings.topics.discrepancies, settings.topics.proof_checks]
            )
            rx.failing = False
            process.start()
            # The forwarders read both topics again from the start: each input is forwarded twice.
            async with Forwarded(settings) as forwarded:
                await forwarded.wait(
                    {(HOOK_MINT, "discrepancy"): 14, (RATE_MINT, "discrepancy"): 24}
                )
            await asyncio.sleep(3)  # whatever the replay would raise, it has raised by now
            after = await read_topic(settings, settings.topics.alerts, idle=2)
            assert len(after) == len(before) == len({r["alert_id"] for r in after})
            dropped = await metric(
                process, "proofrecon_alert_inputs_dropped_total", reason="duplicate"
            )
            assert dropped == len(events) + len(checks)  # recognised, not merely missed
            # Undelivered when the worker stopped, delivered after it started again.
            await rx.wait_for(
                lambda al: (
                    {r["alert_id"] for r in before} <= {x["annotations"]["alert_id"] for x in al}
                ),
                timeout=60,
            )
        finally:
            process.stop()
