"""The hostile-input campaign: a running worker against thousands of adversarial messages.

Hypothesis generates malformed and adversarial melt requests (wrong types, huge and deeply nested
values, invalid points, duplicate Ys, unknown mints, far-future and negative times, non-UTF-8 keys
and values, separators and quotes in ids, `reply_to` tricks, secrets in every shape) and sends
them, interleaved with valid traffic of every class, to one worker on the real stack (Kafka, the
Nutshell mint, chDB). At the end:

- every valid request is answered, every answer for it agrees, and each verdict is the one its
  class must get;
- every bad message is on the dead-letter topic (found by its offset) with an error kind and a
  reason, and each one with a readable request_id is answered BLOCKED / INVALID_REQUEST;
- no planted secret or Cashu token is in any output topic, the worker's log, or ClickHouse;
- the worker never restarted (same process, alive and ready).

`make test` sends PROOFRECON_HOSTILE_MESSAGES=2000 (the default); `make test-hostile` 10,000.
The figures are printed at the end (`-s` shows them) and written to tests/artifacts.
"""

from __future__ import annotations

import asyncio
import json
import os
import threading
import time
import uuid
from collections import Counter
from collections.abc import Coroutine, Iterator
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import clickhouse_connect
import httpx
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from devkit.processes import WorkerProcess
from devkit.wallet import Scenario, WalletProof
from streams.core.kafka import client_kwargs
from streams.core.settings import Settings
from tests.conftest import MINT_URL, build_test_settings, clear_proofrecon_env
from tests.support.hostile import Hostile, broken_message, secret_message
from tests.support.pipeline import publish_token

pytestmark = [pytest.mark.stack, pytest.mark.slow, pytest.mark.timeout(1800)]

MESSAGES = int(os.environ.get("PROOFRECON_HOSTILE_MESSAGES", "2000"))
T = TypeVar("T")


class Loop:
    """An event loop on a thread of its own: hypothesis calls the test synchronously."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self._thread.start()

    def run(self, coro: Coroutine[Any, Any, T], timeout: float = 120) -> T:
        future: Future[T] = asyncio.run_coroutine_threadsafe(coro, self.loop)
        return future.result(timeout=timeout)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout=5)


@dataclass
class Expected:
    verdict: str
    code: str | None


@dataclass
class Ledger:
    """The valid traffic's world: npubs whose tokens the worker holds, by class."""

    clean: list[tuple[str, list[WalletProof]]] = field(default_factory=list)
    high: list[tuple[str, list[WalletProof]]] = field(default_factory=list)
    medium: list[tuple[str, list[WalletProof]]] = field(default_factory=list)


@dataclass
class Campaign:
    settings: Settings
    loop: Loop
    producer: AIOKafkaProducer
    valid: dict[str, Expected] = field(default_factory=dict)  # request_id -> what it must get
    bad: dict[tuple[int, int], Hostile] = field(default_factory=dict)  # (partition, offset)
    planted: set[str] = field(default_factory=set)
    kinds: Counter[str] = field(default_factory=Counter)

    def send(self, key: bytes | None, value: bytes) -> tuple[int, int]:
        topic = self.settings.topics.melt_requests
        meta = self.loop.run(self.producer.send_and_wait(topic, key=key, value=value))
        return meta.partition, meta.offset

    def send_bad(self, message: Hostile) -> None:
        self.bad[self.send(message.key, message.value)] = message
        self.planted.update(message.planted)
        self.kinds[message.kind or "?"] += 1

    def send_valid(self, body: dict[str, Any], expected: Expected) -> None:
        self.valid[body["request_id"]] = expected
        self.send(body["npub"].encode(), json.dumps(body).encode())
        self.kinds[f"valid:{expected.verdict}:{expected.code}"] += 1


def _melt(
    owner: str, proofs: list[WalletProof], by_secret: bool = False, **extra: Any
) -> dict[str, Any]:
    refs = [
        {
            ("secret" if by_secret else "Y"): (p.secret if by_secret else p.Y),
            "amount": p.amount,
            "keyset_id": p.keyset_id,
        }
        for p in proofs
    ]
    return {
        "request_id": f"ok-{uuid.uuid4().hex}",
        "npub": owner,
        "mint_url": MINT_URL,
        "proofs": refs,
        "requested_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        **extra,
    }


@pytest.fixture(scope="module")
def campaign_settings(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Settings]:
    with pytest.MonkeyPatch.context() as mp:
        clear_proofrecon_env(mp)
        yield build_test_settings(
            uuid.uuid4().hex[:10],
            tmp_path_factory.mktemp("hostile") / "data",
            # The local mint does not limit 127.0.0.1: no limiter model, a generous bucket.
            mint={"limiter_model": "none", "requests_per_minute": 60_000, "burst": 1000},
            sweep={"enabled": False},
        )


@pytest.fixture(scope="module")
def campaign_worker(
    campaign_settings: Settings, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[WorkerProcess]:
    log = tmp_path_factory.mktemp("hostile-log") / "worker.log"
    process = WorkerProcess(campaign_settings, log).start()
    yield process
    process.stop()


def _owner() -> str:
    return f"npub1h{uuid.uuid4().hex}"


async def _ledger(
    settings: Settings, worker: WorkerProcess, scenario: Scenario, per_class: int = 6
) -> Ledger:
    world = Ledger()
    for _ in range(per_class):
        clean, high, medium = _owner(), _owner(), _owner()
        await publish_token(settings, worker, clean, scenario.unspent[:2], "unspent")
        await publish_token(settings, worker, high, scenario.spent_elsewhere[:2], "unspent")
        await publish_token(settings, worker, medium, scenario.spent_swap[:1], "pending")
        world.clean.append((clean, scenario.unspent[:2]))
        world.high.append((high, scenario.spent_elsewhere[:2]))
        world.medium.append((medium, scenario.spent_swap[:1]))
    return world


@st.composite
def valid_request(
    draw: st.DrawFn, world: Ledger, scenario: Scenario
) -> tuple[dict[str, Any], Expected]:
    kind = draw(
        st.sampled_from(["clean", "high", "medium", "low", "absent_spent", "deadline", "by_secret"])
    )
    if kind == "clean":
        owner, proofs = draw(st.sampled_from(world.clean))
        return _melt(owner, proofs), Expected("CLEARED", None)
    if kind == "by_secret":  # a valid request naming its proofs by secret: the secret is dropped
        owner, proofs = draw(st.sampled_from(world.clean))
        return _melt(owner, proofs, by_secret=True), Expected("CLEARED", None)
    if kind == "high":
        owner, proofs = draw(st.sampled_from(world.high))
        return _melt(owner, proofs), Expected("BLOCKED", "HIGH_SEVERITY_DISCREPANCIES")
    if kind == "medium":
        owner, proofs = draw(st.sampled_from(world.medium))
        return _melt(owner, proofs), Expected("BLOCKED", "PROOF_SPENT_AT_MINT")
    if kind == "low":
        return _melt(_owner(), scenario.unspent[2:4]), Expected("CLEARED", None)
    if kind == "absent_spent":
        return _melt(_owner(), scenario.spent_swap[1:2]), Expected("BLOCKED", "PROOF_SPENT_AT_MINT")
    body = _melt(_owner(), scenario.unspent[:1], requested_at="2099-01-01T00:00:00Z", deadline_ms=1)
    return body, Expected("BLOCKED", "DEADLINE_EXCEEDED")


async def _read_all(
    settings: Settings, topics: list[str], expect: dict[str, int], timeout: float
) -> dict[str, list[tuple[Any, bytes, bytes]]]:
    """Every record of `topics` from the start, until each has at least `expect[topic]` records
    and nothing new came for a while (or the timeout)."""
    consumer = AIOKafkaConsumer(
        *topics,
        **client_kwargs(settings.kafka),
        group_id=None,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        max_partition_fetch_bytes=8 * 1024 * 1024,
    )
    await consumer.start()
    out: dict[str, list[tuple[Any, bytes, bytes]]] = {t: [] for t in topics}
    try:
        deadline = time.monotonic() + timeout
        last_new = time.monotonic()
        while time.monotonic() < deadline:
            batch = await consumer.getmany(timeout_ms=300, max_records=5000)
            for tp, records in batch.items():
                for r in records:
                    out[tp.topic].append(((tp.partition, r.offset), r.key or b"", r.value or b""))
                    last_new = time.monotonic()
            enough = all(len(out[t]) >= n for t, n in expect.items())
            if enough and time.monotonic() - last_new > 3:
                break
    finally:
        await consumer.stop()
    return out


async def _producer(conf: Settings) -> AIOKafkaProducer:
    producer = AIOKafkaProducer(
        **client_kwargs(conf.kafka), acks="all", max_request_size=4 * 1024 * 1024
    )
    await producer.start()
    return producer


def _leaks(text: str, planted: set[str]) -> list[str]:
    return [s for s in planted if s in text or json.dumps(s)[1:-1] in text]


def test_hostile_campaign(
    campaign_settings: Settings,
    campaign_worker: WorkerProcess,
    real_scenario: Scenario,
    artifacts_dir: Path,
) -> None:
    conf = campaign_settings
    loop = Loop()
    producer = loop.run(_producer(conf))
    pid = campaign_worker.proc.pid if campaign_worker.proc else None
    started = time.monotonic()
    try:
        world = loop.run(_ledger(conf, campaign_worker, real_scenario))
        campaign = Campaign(conf, loop, producer)
        reply_tricks = [
            f"{conf.kafka.app_id}-tokens-changelog",
            f"{conf.kafka.app_id}-open-discrepancies-changelog",
            "__consumer_offsets",
            conf.topics.corrections,
            conf.topics.token_status,
            f"t-missing-{uuid.uuid4().hex[:6]}",
        ]
        npubs = [owner for owner, _ in world.clean]

        @settings_for_campaign
        @given(data=st.data())
        def one(data: st.DataObject) -> None:
            # Every example draws the same things (hypothesis wants that); about a third of
            # them also send a valid request, interleaved with the hostile one.
            body, expected = data.draw(valid_request(world, real_scenario))
            owner = data.draw(st.sampled_from(npubs))
            request_id = f"bad-{uuid.uuid4().hex}"
            if data.draw(st.booleans()):
                message = data.draw(secret_message(owner, MINT_URL, request_id))
            else:
                message = data.draw(broken_message(owner, MINT_URL, request_id, reply_tricks))
            if data.draw(st.integers(0, 2)) == 0:
                if "secret" in body["proofs"][0]:
                    campaign.planted.update(p["secret"] for p in body["proofs"])
                campaign.send_valid(body, expected)
            campaign.send_bad(message)

        one()
        loop.run(producer.flush())
        sent_at = time.monotonic()
        topics = conf.topics
        outputs = [
            topics.preflight_results,
            topics.dead_letter,
            topics.discrepancies,
            topics.corrections,
            topics.proof_checks,
            topics.alerts,
            topics.findings,
        ]
        read = loop.run(
            _read_all(
                conf,
                outputs,
                {
                    topics.preflight_results: len(campaign.valid),
                    topics.dead_letter: len(campaign.bad),
                },
                timeout=300,
            ),
            timeout=330,
        )
    finally:
        loop.run(producer.stop())
        loop.close()

    # --- every valid request answered, as its class must be, and consistently ----------------
    answers: dict[str, list[dict[str, Any]]] = {}
    for _, _, value in read[topics.preflight_results]:
        answer = json.loads(value)
        answers.setdefault(answer["request_id"], []).append(answer)
    unanswered = [rid for rid in campaign.valid if rid not in answers]
    assert not unanswered, f"{len(unanswered)} valid requests unanswered"
    wrong = {
        rid: (answers[rid][0]["verdict"], answers[rid][0]["code"], want)
        for rid, want in campaign.valid.items()
        if (answers[rid][0]["verdict"], answers[rid][0]["code"]) != (want.verdict, want.code)
    }
    assert not wrong, f"wrong verdicts: {list(wrong.items())[:5]}"
    conflicting = [
        rid for rid, got in answers.items() if len({(a["verdict"], a["code"]) for a in got}) > 1
    ]
    assert not conflicting

    # --- every bad message dead-lettered with a reason; answered when it has a request_id ------
    parked = {}
    for _, _, value in read[topics.dead_letter]:
        record = json.loads(value)
        parked[(record["partition"], record["offset"])] = record
    missing = [(where, m.kind) for where, m in campaign.bad.items() if where not in parked]
    assert not missing, f"{len(missing)} bad messages not dead-lettered, e.g. {missing[:5]}"
    assert all(parked[w]["error_kind"] and parked[w]["error"] for w in campaign.bad)
    for message in campaign.bad.values():
        if message.request_id is not None:
            got = answers.get(message.request_id)
            assert got, f"{message.kind}: a readable request_id was not answered"
            assert {(a["verdict"], a["code"]) for a in got} == {("BLOCKED", "INVALID_REQUEST")}

    # --- the worker never restarted -----------------------------------------------------------
    assert campaign_worker.proc is not None and campaign_worker.proc.pid == pid
    assert campaign_worker.proc.poll() is None, "the worker died"
    ready = httpx.get(f"{campaign_worker.url}/readyz", timeout=5)
    assert ready.status_code == 200
    campaign_worker.stop()

    # --- no secret anywhere: topics, the log, ClickHouse -------------------------------------
    leaks: dict[str, list[str]] = {}
    for topic, records in read.items():
        text = "\n".join(
            k.decode("utf-8", "replace") + " " + v.decode("utf-8", "replace") for _, k, v in records
        )
        found = _leaks(text, campaign.planted)
        if found:
            leaks[topic] = found
    log_text = campaign_worker.log_path.read_text(errors="replace")
    if found := _leaks(log_text, campaign.planted):
        leaks["worker log"] = found
    client = clickhouse_connect.get_client(dsn=conf.clickhouse_url)
    try:
        for (table,) in client.query(
            "SELECT name FROM system.tables WHERE database = 'proofrecon'"
        ).result_rows:
            rows = client.raw_query(f"SELECT * FROM proofrecon.`{table}` FORMAT JSONEachRow")
            if found := _leaks(rows.decode("utf-8", "replace"), campaign.planted):
                leaks[f"clickhouse {table}"] = found
    finally:
        client.close()
    assert not leaks, {where: found[:3] for where, found in leaks.items()}

    figures = {
        "messages": len(campaign.valid) + len(campaign.bad),
        "valid_requests": len(campaign.valid),
        "answered": len(answers),
        "bad_messages": len(campaign.bad),
        "dead_lettered": len(parked),
        "secrets_planted": len(campaign.planted),
        "leaks_found": 0,
        "worker_restarts": 0,
        "send_s": round(sent_at - started, 1),
        "total_s": round(time.monotonic() - started, 1),
        "kinds": dict(sorted(campaign.kinds.items())),
    }
    (artifacts_dir / "hostile-campaign.json").write_text(json.dumps(figures, indent=2))
    print("\nhostile campaign:", json.dumps({k: v for k, v in figures.items() if k != "kinds"}))


settings_for_campaign = settings(
    max_examples=MESSAGES * 3 // 4,  # plus a valid request with about a third of them
    phases=[Phase.generate],
    deadline=None,
    database=None,
    suppress_health_check=list(HealthCheck),
)
