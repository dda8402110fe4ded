"""The wallet DB's view of each proof, as kept by the ledger, and how events change it.

One table row per token (`npub|token_id` → version, status, mint, its proofs), because a token's
status is what the wallet changes: a status change is one table write (one changelog message)
whatever the token's size, and Faust's per-write cost dominates ingest. Proofs are found by Y
through `ProofIndex`, an in-memory map `npub|Y` → token_id rebuilt from the table after every
recovery (it is derived state; nothing is lost with it).

Pure: the agent reads the current record, asks `apply_token_event` what to write, and writes it.
Versions are monotonic per token, so a replay or a reordered older event never regresses a proof's
status; a deleted token keeps a tombstone carrying its version for the same reason.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC
from typing import Any

from streams.domain import DbStatus, TokenStatus
from streams.models import TokenStatusEvent


def proof_key(npub: str, y: str) -> str:
    """Key of a proof. Starts with the npub: the npub's partition owns it."""
    return f"{npub}|{y}"


def token_key(npub: str, token_id: str) -> str:
    return f"{npub}|{token_id}"


@dataclass(frozen=True, slots=True)
class ProofRecord:
    """One proof as the wallet DB records it (a view of its token's row)."""

    token_id: str
    status: DbStatus
    amount: int
    keyset_id: str
    mint_url: str
    version: int
    updated_at: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "token_id": self.token_id,
            "status": self.status.value,
            "amount": self.amount,
            "keyset_id": self.keyset_id,
            "mint_url": self.mint_url,
            "version": self.version,
            "updated_at": self.updated_at,
        }


@dataclass(frozen=True, slots=True)
class TokenRecord:
    """A token's last applied version, status and proofs (`npub|token_id` in the tokens table).

    `proofs` holds (Y, amount, keyset_id); a deleted token's tombstone holds none.
    """

    version: int
    status: TokenStatus
    mint_url: str
    updated_at: str
    proofs: tuple[tuple[str, int, str], ...]

    @property
    def ys(self) -> tuple[str, ...]:
        return tuple(y for y, _, _ in self.proofs)

    def proof(self, token_id: str, y: str) -> ProofRecord | None:
        if self.status is TokenStatus.DELETED:
            return None
        for proof_y, amount, keyset_id in self.proofs:
            if proof_y == y:
                return ProofRecord(
                    token_id=token_id,
                    status=DbStatus(self.status.value),
                    amount=amount,
                    keyset_id=keyset_id,
                    mint_url=self.mint_url,
                    version=self.version,
                    updated_at=self.updated_at,
                )
        return None

    def to_dict(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "status": self.status.value,
            "mint_url": self.mint_url,
            "updated_at": self.updated_at,
            "proofs": [list(p) for p in self.proofs],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TokenRecord:
        return cls(
            data["version"],
            TokenStatus(data["status"]),
            data["mint_url"],
            data["updated_at"],
            tuple((y, amount, keyset) for y, amount, keyset in data["proofs"]),
        )


@dataclass(frozen=True, slots=True)
class LedgerUpdate:
    """What one token-status event changes. `ignored` events change nothing."""

    ignored: bool
    token: TokenRecord | None = None
    added_ys: tuple[str, ...] = ()  # new to the token: the index learns them
    removed_ys: tuple[str, ...] = ()  # no longer the wallet's: the index forgets them

    @property
    def status(self) -> DbStatus | None:
        """The proofs' DB status after the update; None for a deleted token."""
        if self.token is None or self.token.status is TokenStatus.DELETED:
            return None
        return DbStatus(self.token.status.value)

    @property
    def touched_ys(self) -> tuple[str, ...]:
        return (self.token.ys if self.token else ()) + self.removed_ys


IGNORED = LedgerUpdate(ignored=True)


def apply_token_event(event: TokenStatusEvent, current: TokenRecord | None) -> LedgerUpdate:
    """The ledger write for `event`, given the token's current record (None if never seen)."""
    if current is not None and event.version <= current.version:
        return IGNORED
    old_ys = current.ys if current else ()
    updated_at = event.occurred_at.astimezone(UTC).isoformat()
    if event.status is TokenStatus.DELETED:
        tombstone = TokenRecord(event.version, event.status, event.mint_url, updated_at, ())
        return LedgerUpdate(False, tombstone, (), old_ys)
    proofs = tuple((p.y, p.amount, p.keyset_id) for p in event.proofs)
    token = TokenRecord(event.version, event.status, event.mint_url, updated_at, proofs)
    # A token's proofs do not change in Cashu, but a wallet may re-issue a token id with fewer
    # proofs after a partial swap; the ones it no longer lists are no longer in its DB.
    listed, known = set(token.ys), set(old_ys)
    added = tuple(y for y in token.ys if y not in known)
    return LedgerUpdate(False, token, added, tuple(y for y in old_ys if y not in listed))


class ProofIndex:
    """`npub|Y` → token_id for the tokens this worker holds; rebuilt from the tokens table."""

    def __init__(self) -> None:
        self._token_of: dict[str, str] = {}

    def __len__(self) -> int:
        return len(self._token_of)

    def token_of(self, npub: str, y: str) -> str | None:
        return self._token_of.get(proof_key(npub, y))

    def apply(self, npub: str, token_id: str, update: LedgerUpdate) -> None:
        for y in update.added_ys:
            self._token_of[proof_key(npub, y)] = token_id
        for y in update.removed_ys:
            self._token_of.pop(proof_key(npub, y), None)

    def rebuild(self, rows: Iterable[tuple[str, dict[str, Any]]]) -> None:
        fresh: dict[str, str] = {}
        for key, row in rows:
            npub, _, token_id = key.rpartition("|")
            for y, _, _ in row.get("proofs", ()):
                fresh[proof_key(npub, y)] = token_id
        self._token_of = fresh


def token_rows(items: Iterable[tuple[Any, Any]]) -> Iterator[tuple[str, dict[str, Any]]]:
    """The tokens table's rows as (key, row), skipping anything that is not one."""
    for key, row in items:
        if isinstance(key, str) and isinstance(row, dict) and "proofs" in row:
            yield key, row
