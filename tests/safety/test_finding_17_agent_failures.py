"""Finding 17 (medium): the ledger and findings agents dead-lettered and acked events they failed
to apply.

At 7262b21 any exception while applying a token-status event or a finding (a table write during a
rebalance, a send that failed) sent the event to the dead-letter topic and acked it: the ledger
silently diverged from the wallet DB, with nothing left to replay. Only an event's own contract
faults may be dead-lettered; a failure that is not the event's is retried, then stops the worker
before the event's offset is committed.

Unit tests: the agents' own loops (the findings agent as registered on the app, the ledger's own
consumer loop) run over a fake runtime whose table refuses writes, with topics that record what is
sent.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

import pytest
from faust.types import TP
from prometheus_client import CollectorRegistry

from streams.core.cashu import y_from_secret
from streams.core.contracts import ContractLimits, to_json_bytes
from streams.core.domain import MintState, Source
from streams.core.errors import StoreError
from streams.core.settings import load_settings
from streams.recon.ledger import ProofIndex, token_key, token_rows
from streams.recon.policy import Policy
from streams.recon.sweep_index import SweepIndex
from streams.worker.agents import findings as findings_agent
from streams.worker.agents import token_status as ledger_agent
from streams.worker.agents.token_feed import TokenFeed
from streams.worker.emit import Emitter
from streams.worker.findings import SIGNATURE_HEADER, Finding, ObservedProof, sign
from streams.worker.metrics import Metrics
from streams.worker.token_table import PartitionRows, TokenTable
from tests.conftest import clear_proofrecon_env

MINT = "http://127.0.0.1:3338"
KEY = "unit-findings-key"


class RefusingTable(dict[str, Any]):
    """A table whose writes fail (RocksDB during a rebalance, a changelog send refused)."""

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self.attempts = 0

    def __setitem__(self, key: str, value: Any) -> None:
        self.attempts += 1
        raise RuntimeError("table write failed")


@dataclass
class RecordingTopic:
    name: str
    sent: list[tuple[bytes, bytes]] = field(default_factory=list)

    async def send(self, *, key: bytes, value: bytes, headers: Any = None) -> asyncio.Future[None]:
        self.sent.append((key, value))
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        done.set_result(None)
        return done

    def get_topic_name(self) -> str:
        return self.name


@dataclass
class Message:
    topic: str
    key: bytes
    value: bytes
    headers: list[tuple[str, bytes]] = field(default_factory=list)
    partition: int = 0
    offset: int = 7

    @property
    def tp(self) -> tuple[str, int]:
        return (self.topic, self.partition)


class Event:
    def __init__(self, message: Message) -> None:
        self.message = message


class Stream:
    def __init__(self, *events: Event) -> None:
        self._events = events

    async def events(self) -> AsyncIterator[Event]:
        for event in self._events:
            yield event


class App:
    """Captures the agent a module registers, and records crashes."""

    def __init__(self) -> None:
        self.agents: dict[str, Callable[[Stream], Any]] = {}
        self.crashes: list[BaseException] = []

    def agent(self, topic: Any, *, name: str, **_: Any) -> Callable[[Any], Any]:
        def register(fn: Callable[[Stream], Any]) -> Callable[[Stream], Any]:
            self.agents[name] = fn
            return fn

        return register

    async def crash(self, exc: BaseException) -> None:
        self.crashes.append(exc)


def _runtime(monkeypatch: pytest.MonkeyPatch, **tables: Any) -> Any:
    clear_proofrecon_env(monkeypatch)
    settings = load_settings(topics={"findings_signing_key": KEY}, mint={"allowlist": [MINT]})
    topics = {name: RecordingTopic(name) for name in settings.topics.topic_fields()}
    tokens = tables.get("tokens", {})
    index = ProofIndex()
    index.rebuild(token_rows(tokens.items()))
    metrics = Metrics(CollectorRegistry())
    return SimpleNamespace(
        settings=settings,
        app=App(),
        policy=Policy(),
        limits=ContractLimits.from_settings(settings.policy),
        metrics=metrics,
        gateways=SimpleNamespace(is_allowed=lambda url: url == MINT),
        topics=topics,
        emit=Emitter(topics, lambda name: topics["preflight_results"], metrics),
        tokens=tokens,
        open_discrepancies=tables.get("open_discrepancies", {}),
        proof_index=index,
        sweep_index=SweepIndex(),
        live=None,
        closables=[],
    )


class NoRows(PartitionRows):
    def __init__(self) -> None:
        pass

    def row(self, partition: int, key: str) -> dict[str, Any] | None:
        return None


class RefusingTokens(TokenTable):
    """The tokens table's batched write path, with a changelog that refuses every write."""

    def __init__(self) -> None:
        self.attempts = 0

    def row(self, partition: int, key: str) -> dict[str, Any] | None:
        return None

    async def _send_all(self, partition: int, records: list[tuple[bytes, bytes]]) -> int:
        self.attempts += 1
        raise RuntimeError("changelog write failed")


async def test_finding_17_a_ledger_table_write_failure_stops_the_worker_never_dead_letters(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    runtime = _runtime(monkeypatch, open_discrepancies={})
    table = RefusingTokens()
    ledger = ledger_agent.Ledger(runtime, table, NoRows())
    # The ledger's consumer, as a rebalance leaves it: partition 0 assigned and positioned.
    feed = TokenFeed(runtime, table, ledger.handle_batch)
    await feed._on_assigned(None, {TP(runtime.settings.topics.melt_requests, 0)})
    feed._positioned = feed._generation
    owner = f"npub1{uuid.uuid4().hex}"
    event = {
        "event_id": uuid.uuid4().hex,
        "npub": owner,
        "token_id": "tok-1",
        "mint_url": MINT,
        "status": "unspent",
        "version": 1,
        "occurred_at": "2026-12-01T00:00:00Z",
        "proofs": [{"Y": y_from_secret("ledger-unit"), "amount": 8, "keyset_id": "00ab"}],
    }
    message = Message("wallet.token-status", owner.encode(), json.dumps(event).encode())
    tp = TP(message.topic, 0)
    assert await feed._apply({tp: [message]}) is False  # the feed stops

    assert table.attempts > 1  # retried
    assert [type(exc) for exc in runtime.app.crashes] == [StoreError]  # then the worker stops
    assert runtime.topics["dead_letter"].sent == []  # and the event is not parked and acked


async def test_finding_17_a_findings_table_write_failure_stops_the_worker_never_dead_letters(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    owner = f"npub1{uuid.uuid4().hex}"
    y = y_from_secret("findings-unit")
    tokens = {
        token_key(owner, "tok-1"): {
            "version": 1,
            "status": "unspent",
            "mint_url": MINT,
            "updated_at": "2026-12-01T00:00:00+00:00",
            "proofs": [[y, 8, "00ab"]],
            "seq": 1,
        }
    }
    table = RefusingTable()
    runtime = _runtime(monkeypatch, tokens=tokens, open_discrepancies=table)
    findings_agent.register(runtime)
    finding = Finding(
        npub=owner,
        mint_url=MINT,
        source=Source.SWEEP,
        observed_at=datetime.now(UTC),
        observation_id=uuid.uuid4().hex,
        proofs=(ObservedProof(Y=y, state=MintState.SPENT),),
    )
    value = to_json_bytes(finding)
    headers = [(SIGNATURE_HEADER, sign(KEY.encode(), value))]
    message = Message("recon.findings", owner.encode(), value, headers)
    await runtime.app.agents["findings"](Stream(Event(message)))

    assert runtime.topics["discrepancies"].sent  # the finding was genuine and classified
    assert table.attempts >= 1
    assert runtime.topics["dead_letter"].sent == []
    assert len(runtime.app.crashes) == 1
