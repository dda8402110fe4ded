"""Ledger agent: `wallet.token-status` into the tokens table, resolving what the wallet fixed.

The ledger must equal a replay of the wallet's stream, so an event is never skipped for a reason
that is not its own (review finding 17). An event that breaks the contract (including a Kafka key
that is not its npub) goes to the dead-letter topic. Anything else that fails — a table write
during a rebalance, the broker refusing the RESOLVED events — is retried, and if it keeps failing
the worker stops before the event's offset is committed, so the event is applied after a restart.

RESOLVED events are confirmed by the broker before the table is written (as in the preflight):
a crash in between replays the event, which resolves the same discrepancies under the same ids.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from streams.core.contracts import DiscrepancyEvent, TokenStatusEvent, parse_token_status
from streams.core.domain import DbStatus
from streams.core.errors import ContractError, DeliveryRefused
from streams.recon.ledger import (
    SWEEPABLE,
    LedgerUpdate,
    ProofRecord,
    TokenRecord,
    apply_token_event,
    token_key,
)
from streams.recon.reconcile import OpenDiscrepancy, resolve_after_ledger_change
from streams.worker.agents.loop import run_guarded
from streams.worker.emit import Deliveries
from streams.worker.events import RawEvent, RawStream, event_context, raw_value, utcnow
from streams.worker.runtime import Runtime
from streams.worker.tables import open_discrepancies, write_open_changes, write_tables

logger = logging.getLogger("proofrecon.ledger")


@dataclass(frozen=True, slots=True)
class _Change:
    """What one applied event does: the token write, each touched proof's record afterwards
    (None: no live token lists it any more), and the discrepancies it resolves."""

    update: LedgerUpdate
    after: dict[str, ProofRecord | None]
    resolved: list[DiscrepancyEvent] = field(default_factory=list)
    open_changes: dict[str, OpenDiscrepancy | None] = field(default_factory=dict)


class Ledger:
    def __init__(self, runtime: Runtime) -> None:
        self._rt = runtime
        self.emit = runtime.emit

    async def handle(self, event: RawEvent) -> None:
        try:
            parsed = self._parse(event)
        except ContractError as exc:
            await self.emit.dead_letter(event, exc.error_kind, exc.message)
            return
        with event_context(event):
            change = self._plan(parsed, event.message.offset)
        if change is None:
            return
        if change.resolved:
            out = Deliveries()
            await self.emit.discrepancies(change.resolved, out)
            try:
                await out.confirm()
            except DeliveryRefused:  # a RESOLVED event too large to send: the ledger goes on
                logger.error("a RESOLVED discrepancy event could not be delivered")
        await self._write(event, parsed, change)

    def _parse(self, event: RawEvent) -> TokenStatusEvent:
        parsed = parse_token_status(raw_value(event), self._rt.limits)
        if event.message.key != parsed.npub.encode():
            # Stored on another npub's partition, its proofs would be invisible to its melts.
            raise ContractError("the Kafka key must be the event's npub (raw UTF-8)")
        return parsed

    def _plan(self, event: TokenStatusEvent, seq: int) -> _Change | None:
        stored = self._rt.tokens.get(token_key(event.npub, event.token_id))
        current = TokenRecord.from_dict(stored) if stored else None
        update = apply_token_event(event, current, seq=seq)
        if update.ignored or update.token is None:
            self._rt.metrics.ledger_updates.labels("stale_version").inc(len(event.proofs))
            return None
        after = self._after(event, update)
        open_now = open_discrepancies(self._rt, event.npub, after)
        if not open_now:
            return _Change(update, after)
        statuses = {y: _status(after[y]) for y in open_now}
        resolved, changes = resolve_after_ledger_change(
            open_now, statuses, policy=self._rt.policy, npub=event.npub, at=utcnow()
        )
        return _Change(update, after, resolved, changes)

    def _after(
        self, event: TokenStatusEvent, update: LedgerUpdate
    ) -> dict[str, ProofRecord | None]:
        """Each touched proof as the wallet DB holds it after the update: this token's record for
        the Ys it lists (it is the latest writer), else the next live token listing the Y (a Y
        moved to another token is not forgotten: review finding 4), else None."""
        token = update.token
        assert token is not None
        after: dict[str, ProofRecord | None] = {y: token.proof(event.token_id, y) for y in token.ys}
        index = self._rt.proof_index
        for y in update.removed_ys:
            other = index.token_besides(event.npub, y, event.token_id)
            row = self._rt.tokens.get(token_key(event.npub, other)) if other else None
            after[y] = TokenRecord.from_dict(row).proof(other, y) if row and other else None
        return after

    async def _write(self, event: RawEvent, parsed: TokenStatusEvent, change: _Change) -> None:
        await write_tables(event, lambda: self._apply(parsed, change))

    def _apply(self, event: TokenStatusEvent, change: _Change) -> None:
        token = change.update.token
        assert token is not None
        self._rt.tokens[token_key(event.npub, event.token_id)] = token.to_dict()
        self._rt.proof_index.apply(event.npub, event.token_id, change.update)
        write_open_changes(self._rt, event.npub, change.open_changes)
        self._track_for_sweep(event.npub, change.after)
        metrics = self._rt.metrics.ledger_updates
        metrics.labels("upserted").inc(len(token.proofs))
        metrics.labels("removed").inc(len(change.update.removed_ys))

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
    ledger = Ledger(runtime)

    @runtime.app.agent(runtime.topics["token_status"], name="ledger", concurrency=1)
    async def ledger_agent(stream: RawStream) -> None:
        await run_guarded(runtime, stream, ledger.handle, "ledger")
