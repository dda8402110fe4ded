"""The wallet DB's view of each proof, as kept by the ledger, and how events change it.

One table row per token (`npub|token_id` → version, status, mint, its proofs), because a token's
status is what the wallet changes: a status change is one table write (one changelog message)
whatever the token's size, and Faust's per-write cost dominates ingest. Proofs are found by Y
through `ProofIndex`, an in-memory map `npub|Y` → token_id rebuilt from the table after every
recovery (it is derived state; nothing is lost with it).

A Y may be listed by more than one live token (a wallet re-issues a proof under a new token before
it updates the old one). The token that listed it last wins: each row carries `seq`, the offset of
the event that wrote it (monotonic within the npub's partition), so the live index and a rebuild
from the table pick the same token, whatever order the table is read in.

Keys: `npub|token_id` and `npub|Y`. The contract forbids `|` in an npub, so splitting a key at its
first `|` is unambiguous whatever a token id holds.

Pure: the agent reads the current record, asks `apply_token_event` what to write, and writes it.
Versions are monotonic per token, so a replay or a reordered older event never regresses a proof's
status; a deleted token keeps a tombstone carrying its version for the same reason.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC
from typing import Any

from streams.core.contracts import TokenStatusEvent
from streams.core.domain import DbStatus, TokenStatus

KEY_SEPARATOR = "|"  # never in an npub (streams.core.contracts.Npub)
# The DB statuses the sweep re-checks: what the wallet would still spend or is waiting on.
SWEEPABLE = frozenset({DbStatus.UNSPENT, DbStatus.PENDING})


def proof_key(npub: str, y: str) -> str:
    """Key of a proof. Starts with the npub: the npub's partition owns it."""
    return f"{npub}{KEY_SEPARATOR}{y}"


def token_key(npub: str, token_id: str) -> str:
    return f"{npub}{KEY_SEPARATOR}{token_id}"


def split_key(key: str) -> tuple[str, str]:
    """(npub, rest) of a table key: the first separator ends the npub."""
    npub, _, rest = key.partition(KEY_SEPARATOR)
    return npub, rest


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

    `proofs` holds (Y, amount, keyset_id); a deleted token's tombstone holds none. `seq` orders
    the writes of one npub (see module).
    """

    version: int
    status: TokenStatus
    mint_url: str
    updated_at: str
    proofs: tuple[tuple[str, int, str], ...]
    seq: int = 0

    @property
    def live(self) -> bool:
        return self.status is not TokenStatus.DELETED

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
            "seq": self.seq,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TokenRecord:
        return cls(
            data["version"],
            TokenStatus(data["status"]),
            data["mint_url"],
            data["updated_at"],
            tuple((y, amount, keyset) for y, amount, keyset in data["proofs"]),
            int(data.get("seq", 0)),  # rows written before seq existed
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


def apply_token_event(
    event: TokenStatusEvent, current: TokenRecord | None, seq: int = 0
) -> LedgerUpdate:
    """The ledger write for `event`, given the token's current record (None if never seen).

    `seq` is the event's position in its npub's stream (its Kafka offset)."""
    if current is not None and event.version <= current.version:
        return IGNORED
    old_ys = current.ys if current else ()
    updated_at = event.occurred_at.astimezone(UTC).isoformat()
    if event.status is TokenStatus.DELETED:
        tombstone = TokenRecord(event.version, event.status, event.mint_url, updated_at, (), seq)
        return LedgerUpdate(False, tombstone, (), old_ys)
    proofs = tuple((p.y, p.amount, p.keyset_id) for p in event.proofs)
    token = TokenRecord(event.version, event.status, event.mint_url, updated_at, proofs, seq)
    # A token's proofs do not change in Cashu, but a wallet may re-issue a token id with fewer
    # proofs after a partial swap; the ones it no longer lists are no longer in its DB.
    listed, known = set(token.ys), set(old_ys)
    added = tuple(y for y in token.ys if y not in known)
    return LedgerUpdate(False, token, added, tuple(y for y in old_ys if y not in listed))


class ProofIndex:
    """`npub|Y` → the live token that listed the Y last, for the tokens this worker holds.

    Most Ys are listed by one token; the few listed by several keep the set of their tokens in
    `_shared`, so that dropping one falls back to the next latest instead of forgetting the Y.
    """

    def __init__(self) -> None:
        self._token_of: dict[str, str] = {}
        self._seq: dict[str, int] = {}  # npub|token_id -> seq of its row (live tokens)
        self._shared: dict[str, set[str]] = {}  # npub|Y -> token ids, when more than one

    def __len__(self) -> int:
        return len(self._token_of)

    def token_of(self, npub: str, y: str) -> str | None:
        return self._token_of.get(proof_key(npub, y))

    def token_besides(self, npub: str, y: str, token_id: str) -> str | None:
        """The live token that would hold `y` if `token_id` no longer listed it."""
        key = proof_key(npub, y)
        holders = self._shared.get(key)
        if holders is None:
            current = self._token_of.get(key)
            return current if current != token_id else None
        others = holders - {token_id}
        return self._latest(npub, others) if others else None

    def apply(self, npub: str, token_id: str, update: LedgerUpdate) -> None:
        token = update.token
        if update.ignored or token is None:
            return
        tkey = token_key(npub, token_id)
        if token.live:
            self._seq[tkey] = token.seq
        for y in update.removed_ys:
            self._unlist(npub, y, token_id)
        if not token.live:
            self._seq.pop(tkey, None)
        for y in token.ys:
            self._list(npub, y, token_id, newest=True)

    def rebuild(self, rows: Iterable[tuple[str, dict[str, Any]]]) -> None:
        self._token_of, self._seq, self._shared = {}, {}, {}
        for key, row in rows:
            token = TokenRecord.from_dict(row)
            if not token.live:
                continue
            npub, token_id = split_key(key)
            self._seq[key] = token.seq
            for y in token.ys:
                self._list(npub, y, token_id, newest=False)

    def _list(self, npub: str, y: str, token_id: str, *, newest: bool) -> None:
        key = proof_key(npub, y)
        current = self._token_of.get(key)
        if current is None or current == token_id:
            self._token_of[key] = token_id
            return
        holders = self._shared.setdefault(key, {current})
        holders.add(token_id)
        # The live path applies events in order, so the token written now is the latest.
        self._token_of[key] = token_id if newest else self._latest(npub, holders)

    def _unlist(self, npub: str, y: str, token_id: str) -> None:
        key = proof_key(npub, y)
        holders = self._shared.get(key)
        if holders is None:
            if self._token_of.get(key) == token_id:
                del self._token_of[key]
            return
        holders.discard(token_id)
        self._token_of[key] = self._latest(npub, holders)
        if len(holders) == 1:
            del self._shared[key]

    def _latest(self, npub: str, token_ids: Iterable[str]) -> str:
        # Ties (rows written before seq existed) go to the greater id: arbitrary but stable.
        return max(token_ids, key=lambda t: (self._seq.get(token_key(npub, t), -1), t))


def token_rows(items: Iterable[tuple[Any, Any]]) -> Iterator[tuple[str, dict[str, Any]]]:
    """The tokens table's rows as (key, row), skipping anything that is not one."""
    for key, row in items:
        if isinstance(key, str) and isinstance(row, dict) and "proofs" in row:
            yield key, row
