"""Ledger agent: `wallet.token-status` into the proof table, resolving what the wallet fixed."""

from __future__ import annotations

import logging

from streams.agents.base import (
    Emitter,
    RawEvent,
    RawStream,
    event_context,
    open_discrepancies,
    raw_value,
    utcnow,
    write_open_changes,
)
from streams.app import Runtime
from streams.domain import DbStatus, ErrorKind
from streams.errors import ContractError
from streams.ledger import (
    LedgerUpdate,
    TokenRecord,
    apply_token_event,
    token_key,
)
from streams.models import DiscrepancyEvent, TokenStatusEvent, parse_token_status
from streams.reconcile import resolve_after_ledger_change

logger = logging.getLogger("proofrecon.ledger")

SWEEPABLE = (DbStatus.UNSPENT, DbStatus.PENDING)


class Ledger:
    def __init__(self, runtime: Runtime) -> None:
        self._rt = runtime
        self.emit = Emitter(runtime)

    async def handle(self, event: RawEvent) -> None:
        try:
            parsed = parse_token_status(raw_value(event), self._rt.limits)
        except ContractError as exc:
            kind = exc.error_kind
            await self.emit.dead_letter(event, kind, exc.message)
            return
        with event_context(event):
            update = self._apply(parsed)
            resolved = self._resolve(parsed, update) if not update.ignored else []
        if resolved:
            await self.emit.discrepancies(resolved)

    def _apply(self, event: TokenStatusEvent) -> LedgerUpdate:
        tkey = token_key(event.npub, event.token_id)
        stored = self._rt.tokens.get(tkey)
        update = apply_token_event(event, TokenRecord.from_dict(stored) if stored else None)
        metrics = self._rt.metrics.ledger_updates
        if update.ignored or update.token is None:
            metrics.labels("stale_version").inc(len(event.proofs))
            return update
        self._rt.tokens[tkey] = update.token.to_dict()
        self._rt.proof_index.apply(event.npub, event.token_id, update)
        self._track_for_sweep(event, update)
        metrics.labels("upserted").inc(len(update.token.proofs))
        metrics.labels("removed").inc(len(update.removed_ys))
        return update

    def _track_for_sweep(self, event: TokenStatusEvent, update: LedgerUpdate) -> None:
        sweep = self._rt.extras.get("sweep_index")
        if sweep is None:
            return
        status = update.status
        for y in update.token.ys if update.token else ():
            if status in SWEEPABLE:
                sweep.track(event.npub, y, event.mint_url)
            else:
                sweep.forget(event.npub, y)
        for y in update.removed_ys:
            sweep.forget(event.npub, y)

    def _resolve(self, event: TokenStatusEvent, update: LedgerUpdate) -> list[DiscrepancyEvent]:
        open_now = open_discrepancies(self._rt, event.npub, update.touched_ys)
        if not open_now:
            return []
        statuses: dict[str, DbStatus | None] = {y: None for y in update.removed_ys}
        kept = update.token.ys if update.token else ()
        statuses.update(dict.fromkeys(kept, update.status))
        resolved, changes = resolve_after_ledger_change(
            open_now, statuses, policy=self._rt.policy, npub=event.npub, at=utcnow()
        )
        write_open_changes(self._rt, event.npub, changes)
        return resolved


def register(runtime: Runtime) -> None:
    ledger = Ledger(runtime)

    @runtime.app.agent(runtime.topics["token_status"], name="ledger", concurrency=1)
    async def ledger_agent(stream: RawStream) -> None:
        async for event in stream.events():
            try:
                await ledger.handle(event)
            except Exception as exc:  # one bad event must not stop the ledger
                logger.exception("ledger could not apply a token-status event")
                await ledger.emit.dead_letter(event, ErrorKind.PROCESSING_ERROR, type(exc).__name__)
