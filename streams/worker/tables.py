"""Typed access to the worker's tables. Keys live on the npub's partition: `npub|token_id` in the
tokens table, `npub|Y` in the open-discrepancy table; writes need the event's context and are
retried (`write_tables`), reads outside an event search every partition this worker holds."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping

from tenacity import AsyncRetrying, stop_after_attempt, wait_exponential_jitter

from streams.core.errors import StoreError
from streams.recon.ledger import ProofRecord, TokenRecord, proof_key, token_key
from streams.recon.reconcile import OpenDiscrepancy, ProofToCheck
from streams.worker.events import RawEvent, event_context
from streams.worker.runtime import Runtime


def ledger_record(runtime: Runtime, npub: str, y: str) -> ProofRecord | None:
    """The wallet DB's record of a proof: its token's row, found through the proof index."""
    token_id = runtime.proof_index.token_of(npub, y)
    if token_id is None:
        return None
    row = runtime.tokens.get(token_key(npub, token_id))
    return TokenRecord.from_dict(row).proof(token_id, y) if row else None


def to_check(y: str, amount: int, keyset_id: str, record: ProofRecord | None) -> ProofToCheck:
    """One requested proof joined with the ledger. The ledger wins the join: when it knows the
    proof, its token, amount and keyset are used, never the caller's (review finding 5)."""
    if record is None:
        return ProofToCheck(y, amount, keyset_id, None, None)
    return ProofToCheck(y, record.amount, record.keyset_id, record.token_id, record)


def open_discrepancies(
    runtime: Runtime, npub: str, ys: Iterable[str]
) -> dict[str, OpenDiscrepancy]:
    found = {}
    for y in ys:
        stored = runtime.open_discrepancies.get(proof_key(npub, y))
        if stored is not None:
            found[y] = OpenDiscrepancy.from_dict(stored)
    return found


def write_open_changes(
    runtime: Runtime, npub: str, changes: Mapping[str, OpenDiscrepancy | None]
) -> None:
    """Store newly opened discrepancies, drop resolved ones. Needs the event's context."""
    table = runtime.open_discrepancies
    for y, change in changes.items():
        key = proof_key(npub, y)
        if change is None:
            if table.get(key) is not None:
                del table[key]
        else:
            table[key] = change.to_dict()


_WRITE_ATTEMPTS = 4


async def write_tables(event: RawEvent, write: Callable[[], None]) -> None:
    """Run `write` (table writes) in `event`'s context, retried; StoreError if it keeps failing
    (a table written during a rebalance, a store that cannot be opened)."""
    retrying = AsyncRetrying(
        stop=stop_after_attempt(_WRITE_ATTEMPTS),
        wait=wait_exponential_jitter(initial=0.05, max=1.0),
        reraise=True,
    )
    try:
        async for attempt in retrying:
            with attempt, event_context(event):
                write()
    except Exception as exc:
        raise StoreError(f"table write failed: {type(exc).__name__}") from exc
