"""Ledger agent: `wallet.token-status` into the tokens table, resolving what the wallet fixed.

The ledger must equal a replay of the wallet's stream, so an event is never skipped for a reason
that is not its own (review finding 17). An event that breaks the contract (including a Kafka key
that is not its npub) goes to the dead-letter topic. Anything else that fails — a table write
during a rebalance, the broker refusing the RESOLVED events — is retried, and if it keeps failing
the worker stops before the event's offset is committed, so the event is applied after a restart.

Events come a partition's batch at a time (streams.worker.agents.token_feed): each is planned
against the table as the batch's earlier events left it, and the batch is then written at once
(streams.worker.token_table), with the offset to read on from. RESOLVED events are confirmed by
the broker before the table is written (as in the preflight): a crash in between replays the
batch, which resolves the same discrepancies under the same ids.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, cast

from streams.core.contracts import DiscrepancyEvent, TokenStatusEvent, parse_token_status
from streams.core.domain import DbStatus, ErrorKind
from streams.core.errors import ContractError, DeliveryRefused, StoreError
from streams.recon.ledger import (
    SWEEPABLE,
    LedgerUpdate,
    ProofRecord,
    TokenRecord,
    apply_token_event,
    proof_key,
    token_key,
)
from streams.recon.reconcile import OpenDiscrepancy, resolve_after_ledger_change
from streams.worker.agents.token_feed import Consumed, TokenFeed
from streams.worker.emit import Deliveries
from streams.worker.events import RawEvent, utcnow
from streams.worker.runtime import Runtime
from streams.worker.tables import write_open_changes, write_tables
from streams.worker.token_table import PartitionRows, TokenTable

logger = logging.getLogger("proofrecon.ledger")


@dataclass(frozen=True, slots=True)
class _Change:
    """What one applied event does: the token write, each touched proof's record afterwards
    (None: no live token lists it any more), and the discrepancies it resolves."""

    update: LedgerUpdate
    after: dict[str, ProofRecord | None]
    resolved: list[DiscrepancyEvent] = field(default_factory=list)
    open_changes: dict[str, OpenDiscrepancy | None] = field(default_factory=dict)


class _Consumed:
    """A consumed record where the emitter and the table helpers want an event (`.message`)."""

    __slots__ = ("__weakref__", "message")  # event_context holds a weak reference

    def __init__(self, record: Consumed) -> None:
        self.message = record


@dataclass(frozen=True, slots=True)
class _Applied:
    event: TokenStatusEvent
    change: _Change
    resolved: Deliveries | None


@dataclass(eq=False)
class _Batch:
    """One partition's events applied together. Their writes are staged here, where the batch's
    later events read them, until the batch is written."""

    partition: int
    last: _Consumed
    rows: dict[str, dict[str, Any]] = field(default_factory=dict)  # npub|token_id -> row
    open_changes: dict[str, OpenDiscrepancy | None] = field(default_factory=dict)  # npub|Y
    applied: list[_Applied] = field(default_factory=list)


class Ledger:
    def __init__(
        self, runtime: Runtime, table: TokenTable, open_rows: PartitionRows | None = None
    ) -> None:
        self._rt = runtime
        self.emit = runtime.emit
        self._tokens = table
        self._open = open_rows or PartitionRows(runtime.open_discrepancies)
        updates = runtime.metrics.ledger_updates
        self._upserted, self._removed = updates.labels("upserted"), updates.labels("removed")

    async def handle_batch(self, partition: int, records: Sequence[Consumed]) -> None:
        """Apply one partition's records, in order. Raises (and writes nothing) when the batch
        cannot be written: the worker then stops and the batch is read again."""
        batch = _Batch(partition, _Consumed(records[-1]))
        for record in records:
            await self._take(batch, _Consumed(record))
        for applied in batch.applied:  # outputs confirmed before the tables are written
            if applied.resolved is not None:
                try:
                    await applied.resolved.confirm()
                except DeliveryRefused:  # a RESOLVED event too large to send: the ledger goes on
                    logger.error("a RESOLVED discrepancy event could not be delivered")
        await self._tokens.write(partition, batch.rows, records[-1].offset)
        if batch.open_changes:
            await write_tables(self._as_event(batch.last), lambda: self._close(batch))
        for applied in batch.applied:
            self._after_write(applied.event, applied.change)

    async def _take(self, batch: _Batch, consumed: _Consumed) -> None:
        event = self._as_event(consumed)
        try:
            parsed = self._parse(consumed)
        except ContractError as exc:
            await self.emit.dead_letter(event, exc.error_kind, exc.message)
            return
        try:
            change = self._plan(batch, parsed, consumed.message.offset)
        except StoreError:
            raise  # not the event's fault: the worker stops (see module)
        except Exception as exc:  # a bug, not the input's contract: parked, the ledger goes on
            logger.error("the ledger could not apply an event", exc_info=exc)
            await self.emit.dead_letter(event, ErrorKind.PROCESSING_ERROR, type(exc).__name__)
            return
        if change is None:
            return
        token = change.update.token
        assert token is not None
        batch.rows[token_key(parsed.npub, parsed.token_id)] = token.to_dict()
        for y, open_change in change.open_changes.items():
            batch.open_changes[proof_key(parsed.npub, y)] = open_change
        self._rt.proof_index.apply(parsed.npub, parsed.token_id, change.update)
        resolved = None
        if change.resolved:
            resolved = Deliveries()
            await self.emit.discrepancies(change.resolved, resolved)
        batch.applied.append(_Applied(parsed, change, resolved))

    @staticmethod
    def _as_event(consumed: _Consumed) -> RawEvent:
        return cast(RawEvent, consumed)

    def _parse(self, consumed: _Consumed) -> TokenStatusEvent:
        message = consumed.message
        parsed = parse_token_status(message.value or b"", self._rt.limits)
        if message.key != parsed.npub.encode():
            # Stored on another npub's partition, its proofs would be invisible to its melts.
            raise ContractError("the Kafka key must be the event's npub (raw UTF-8)")
        return parsed

    def _row(self, batch: _Batch, key: str) -> dict[str, Any] | None:
        staged = batch.rows.get(key)
        return staged if staged is not None else self._tokens.row(batch.partition, key)

    def _plan(self, batch: _Batch, event: TokenStatusEvent, seq: int) -> _Change | None:
        stored = self._row(batch, token_key(event.npub, event.token_id))
        current = TokenRecord.from_dict(stored) if stored else None
        update = apply_token_event(event, current, seq=seq)
        if update.ignored or update.token is None:
            self._rt.metrics.ledger_updates.labels("stale_version").inc(len(event.proofs))
            return None
        after = self._after(batch, event, update)
        open_now = self._open_now(batch, event.npub, after)
        if not open_now:
            return _Change(update, after)
        statuses = {y: _status(after[y]) for y in open_now}
        resolved, changes = resolve_after_ledger_change(
            open_now, statuses, policy=self._rt.policy, npub=event.npub, at=utcnow()
        )
        return _Change(update, after, resolved, changes)

    def _after(
        self, batch: _Batch, event: TokenStatusEvent, update: LedgerUpdate
    ) -> dict[str, ProofRecord | None]:
        """Each touched proof as the wallet DB holds it after the update: this token's record for
        the Ys it lists (it is the latest writer), else the next live token listing the Y (a Y
        moved to another token is not forgotten: review finding 4), else None."""
        token = update.token
        assert token is not None
        after: dict[str, ProofRecord | None] = dict(token.records(event.token_id))
        index = self._rt.proof_index
        for y in update.removed_ys:
            other = index.token_besides(event.npub, y, event.token_id)
            row = self._row(batch, token_key(event.npub, other)) if other else None
            after[y] = TokenRecord.from_dict(row).proof(other, y) if row and other else None
        return after

    def _open_now(self, batch: _Batch, npub: str, ys: Iterable[str]) -> dict[str, OpenDiscrepancy]:
        """The open discrepancies of these proofs, as the batch's earlier events left them."""
        found = {}
        for y in ys:
            key = proof_key(npub, y)
            if key in batch.open_changes:
                staged = batch.open_changes[key]
                if staged is not None:
                    found[y] = staged
                continue
            stored = self._open.row(batch.partition, key)
            if stored is not None:
                found[y] = OpenDiscrepancy.from_dict(stored)
        return found

    def _close(self, batch: _Batch) -> None:
        """The batch's open-discrepancy changes (in the batch's event context)."""
        for applied in batch.applied:
            write_open_changes(self._rt, applied.event.npub, applied.change.open_changes)

    def _after_write(self, event: TokenStatusEvent, change: _Change) -> None:
        token = change.update.token
        assert token is not None
        self._track_for_sweep(event.npub, change.after)
        self._upserted.inc(len(token.proofs))
        if change.update.removed_ys:
            self._removed.inc(len(change.update.removed_ys))
        if self._rt.live is not None:
            self._rt.live.want(event.npub, change.after, event.occurred_at.timestamp())

    def _track_for_sweep(self, npub: str, after: dict[str, ProofRecord | None]) -> None:
        sweep = self._rt.sweep_index
        for y, record in after.items():
            if record is not None and record.status in SWEEPABLE:
                sweep.track(npub, y, record.mint_url)
            else:
                sweep.forget(npub, y)


def _status(record: ProofRecord | None) -> DbStatus | None:
    return record.status if record is not None else None


def register(runtime: Runtime) -> None:
    table = TokenTable(runtime.tokens, runtime.settings.kafka)
    runtime.closables.append(table)
    ledger = Ledger(runtime, table)
    TokenFeed(runtime, table, ledger.handle_batch).register()
