"""The ledger's batched path (streams.worker.agents.token_status, streams.worker.token_table) and
its compact proof index (streams.recon.ledger).

- Applying a token-status stream in batches of any size gives the rows and the index a replay
  event by event gives: each event of a batch sees what the batch's earlier events wrote.
- The compact map under the proof index behaves as a dict through inserts, deletes and resizes.
- The tokens table's keys are written exactly as Faust's json key serializer writes them, so
  `table.get` and changelog recovery find the rows the batched path wrote.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

import faust
from hypothesis import given, settings
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry

from streams.core.contracts import ContractLimits, TokenStatusEvent, to_json_bytes
from streams.core.settings import load_settings
from streams.recon.ledger import ProofIndex, TokenRecord, _FingerprintMap, apply_token_event
from streams.recon.ledger import token_key as key_of
from streams.recon.policy import Policy
from streams.recon.sweep_index import SweepIndex
from streams.worker.agents.token_status import Ledger
from streams.worker.metrics import Metrics
from streams.worker.token_table import PartitionRows, TokenTable, encode_key, encode_row
from tests.test_ledger_index_property import NPUBS, YS, Replay, events


class MemoryRows(PartitionRows):
    def __init__(self) -> None:
        self.rows: dict[str, dict[str, Any]] = {}

    def row(self, partition: int, key: str) -> dict[str, Any] | None:
        return self.rows.get(key)


class MemoryTokens(TokenTable):
    """The tokens table's rows as the batched path writes them (encoded, then read back)."""

    def __init__(self) -> None:
        self.rows: dict[str, bytes] = {}
        self.source_offsets: list[int] = []

    def row(self, partition: int, key: str) -> dict[str, Any] | None:
        raw = self.rows.get(key)
        return json.loads(raw) if raw is not None else None

    async def write(self, partition: int, rows: Any, source_offset: int) -> None:
        self.rows.update({key: encode_row(row) for key, row in rows.items()})
        self.source_offsets.append(source_offset)


@dataclass
class Record:
    topic: str
    partition: int
    offset: int
    key: bytes
    value: bytes


def _runtime() -> Any:
    conf = load_settings()
    return SimpleNamespace(
        settings=conf,
        policy=Policy(),
        limits=ContractLimits.from_settings(conf.policy),
        metrics=Metrics(CollectorRegistry()),
        emit=None,  # nothing here is dead-lettered or resolved
        proof_index=ProofIndex(),
        sweep_index=SweepIndex(),
        live=None,
        open_discrepancies={},
    )


@settings(max_examples=150, deadline=None)
@given(events(), st.lists(st.integers(1, 7), min_size=1, max_size=40))
def test_batches_of_any_size_apply_as_a_replay_does(
    stream: list[TokenStatusEvent], sizes: list[int]
) -> None:
    runtime, tokens = _runtime(), MemoryTokens()
    ledger = Ledger(runtime, tokens, MemoryRows())
    records = [
        Record("wallet.token-status", 0, seq, e.npub.encode(), to_json_bytes(e))
        for seq, e in enumerate(stream)
    ]
    batches, at = [], 0
    for size in sizes * (len(records) // len(sizes) + 1):
        if at >= len(records):
            break
        batches.append(records[at : at + size])
        at += size

    async def apply_all() -> None:
        for batch in batches:
            await ledger.handle_batch(0, batch)

    asyncio.run(apply_all())

    table: dict[str, dict[str, Any]] = {}
    replay = Replay()
    for seq, event in enumerate(stream):  # the event-by-event oracle
        key = key_of(event.npub, event.token_id)
        stored = table.get(key)
        update = apply_token_event(event, TokenRecord.from_dict(stored) if stored else None, seq)
        replay.apply(event, seq)
        if not update.ignored and update.token is not None:
            table[key] = update.token.to_dict()
    assert {k: json.loads(v) for k, v in tokens.rows.items()} == table
    assert tokens.source_offsets == [batch[-1].offset for batch in batches]
    for npub in NPUBS:
        for y in YS:
            assert runtime.proof_index.token_of(npub, y) == replay.holder(npub, y)


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(st.sampled_from(["put", "delete", "setdefault"]), st.integers(0, 3000)),
        max_size=400,
    )
)
def test_fingerprint_map_is_a_dict(operations: list[tuple[str, int]]) -> None:
    compact, plain = _FingerprintMap(capacity=1), {}
    for value, (op, n) in enumerate(operations):
        key = (hash(f"k{n}"), n * 7919 % 2**32)
        if op == "put":
            compact.put(*key, value)
            plain[key] = value
        elif op == "delete":
            compact.delete(*key)
            plain.pop(key, None)
        else:
            assert compact.setdefault(*key, value) == plain.get(key)
            plain.setdefault(key, value)
        assert len(compact) == len(plain)
    for n in range(3001):
        key = (hash(f"k{n}"), n * 7919 % 2**32)
        assert compact.get(*key) == plain.get(key)


@given(st.text(max_size=40))
def test_table_keys_are_encoded_as_faust_encodes_them(text: str) -> None:
    app = faust.App("proofrecon-key-check")
    key = f"npub1x|{text}"
    assert encode_key(key) == app.serializers.dumps_key(str, key, serializer="json")
