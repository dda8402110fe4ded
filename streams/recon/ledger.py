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

from array import array
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC
from typing import Any
from zlib import crc32

from streams.core.contracts import TokenStatusEvent
from streams.core.domain import DbStatus, TokenStatus

KEY_SEPARATOR = "|"  # never in an npub (streams.core.contracts.Npub)
# The DB statuses the sweep re-checks: what the wallet would still spend or is waiting on.
SWEEPABLE = frozenset({DbStatus.UNSPENT, DbStatus.PENDING})
_DB_VALUES = {status.value for status in DbStatus}
_DB_STATUS = {
    status: DbStatus(status.value) for status in TokenStatus if status.value in _DB_VALUES
}
_MIN_SLOTS = 1024
_EMPTY = -1  # _FingerprintMap slot values: never used, used and removed, else a token number
_TOMBSTONE = -2


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
        return tuple([y for y, _, _ in self.proofs])

    def proof(self, token_id: str, y: str) -> ProofRecord | None:
        if self.status is TokenStatus.DELETED:
            return None
        for proof_y, amount, keyset_id in self.proofs:
            if proof_y == y:
                return self._record(token_id, amount, keyset_id)
        return None

    def records(self, token_id: str) -> dict[str, ProofRecord]:
        """Every proof of the token by Y (none for a deleted token): `proof` for each, at once."""
        if self.status is TokenStatus.DELETED:
            return {}
        return {y: self._record(token_id, amount, keyset) for y, amount, keyset in self.proofs}

    def _record(self, token_id: str, amount: int, keyset_id: str) -> ProofRecord:
        return ProofRecord(
            token_id, _DB_STATUS[self.status], amount, keyset_id, self.mint_url, self.version,
            self.updated_at,
        )  # fmt: skip

    def to_dict(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "status": self.status.value,
            "mint_url": self.mint_url,
            "updated_at": self.updated_at,
            "proofs": list(map(list, self.proofs)),
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
    proofs = tuple([(p.y, p.amount, p.keyset_id) for p in event.proofs])
    token = TokenRecord(event.version, event.status, event.mint_url, updated_at, proofs, seq)
    if not old_ys:
        return LedgerUpdate(False, token, tuple([y for y, _, _ in proofs]), ())
    # A token's proofs do not change in Cashu, but a wallet may re-issue a token id with fewer
    # proofs after a partial swap; the ones it no longer lists are no longer in its DB.
    listed, known = {y for y, _, _ in proofs}, set(old_ys)
    added = tuple([y for y, _, _ in proofs if y not in known])
    return LedgerUpdate(False, token, added, tuple([y for y in old_ys if y not in listed]))


class _FingerprintMap:
    """A map from a key's fingerprint to a small int, in flat arrays (16 bytes a slot).

    A Python dict of `npub|Y` strings costs ~230 bytes a proof, mostly the key string; this keeps
    two independent hashes of the key instead: the 64-bit SipHash Python gives a str and a CRC-32
    of its bytes. Two keys share both only with probability ~n²/2⁹⁷ (about 10⁻¹⁷ at ten million
    proofs). Open addressing with linear probing; removed slots are tombstones until the next
    resize.
    """

    __slots__ = ("_checks", "_hashes", "_mask", "_tombstones", "_used", "_values")

    def __init__(self, capacity: int = _MIN_SLOTS) -> None:
        self._alloc(capacity)

    def _alloc(self, capacity: int) -> None:
        size = _MIN_SLOTS
        while size < capacity:
            size *= 2
        self._hashes = array("q", bytes(8 * size))
        self._checks = array("I", bytes(4 * size))
        self._values = array("i", [_EMPTY]) * size
        self._mask = size - 1
        self._used = 0
        self._tombstones = 0

    def __len__(self) -> int:
        return self._used

    def _find(self, h: int, c: int) -> int:
        """The slot holding (h, c), or -1 - the first free slot to put it in."""
        mask, hashes, checks, values = self._mask, self._hashes, self._checks, self._values
        i = h & mask
        free = -1
        while True:
            value = values[i]
            if value == _EMPTY:
                return -1 - (i if free < 0 else free)
            if value == _TOMBSTONE:
                if free < 0:
                    free = i
            elif hashes[i] == h and checks[i] == c:
                return i
            i = (i + 1) & mask

    def get(self, h: int, c: int) -> int | None:
        i = self._find(h, c)
        return self._values[i] if i >= 0 else None

    def put(self, h: int, c: int, value: int) -> None:
        self._put(h, c, value, replace=True)

    def setdefault(self, h: int, c: int, value: int) -> int | None:
        """The value held for (h, c); if none, `value` is stored and None returned."""
        return self._put(h, c, value, replace=False)

    def _put(self, h: int, c: int, value: int, *, replace: bool) -> int | None:
        i = self._find(h, c)
        if i >= 0:
            held = self._values[i]
            if replace:
                self._values[i] = value
            return held
        i = -1 - i
        if self._values[i] == _TOMBSTONE:
            self._tombstones -= 1
        self._hashes[i], self._checks[i], self._values[i] = h, c, value
        self._used += 1
        if 3 * (self._used + self._tombstones) > 2 * (self._mask + 1):
            self._resize()
        return None

    def delete(self, h: int, c: int) -> None:
        i = self._find(h, c)
        if i >= 0:
            self._values[i] = _TOMBSTONE
            self._used -= 1
            self._tombstones += 1

    def _resize(self) -> None:
        old_hashes, old_checks, old_values = self._hashes, self._checks, self._values
        self._alloc(2 * self._used)
        mask, hashes, checks, values = self._mask, self._hashes, self._checks, self._values
        used = 0
        for j, v in enumerate(old_values):
            if v < 0:
                continue
            h = old_hashes[j]
            i = h & mask
            while values[i] != _EMPTY:  # distinct keys, no tombstones: the first empty slot
                i = (i + 1) & mask
            hashes[i], checks[i], values[i] = h, old_checks[j], v
            used += 1
        self._used = used


def _fingerprint(key: str) -> tuple[int, int]:
    return hash(key), crc32(key.encode())


class ProofIndex:
    """`npub|Y` → the live token that listed the Y last, for the tokens this worker holds.

    Compact (~60 bytes a proof with five proofs a token): proofs and live tokens are fingerprints
    in flat arrays (`_FingerprintMap`), tokens are small ints naming their id and seq. Most Ys
    are listed by one token; the few listed by several keep the set of their tokens in `_shared`,
    so that dropping one falls back to the next latest instead of forgetting the Y.
    """

    def __init__(self) -> None:
        self._clear()

    def _clear(self) -> None:
        self._proofs = _FingerprintMap()  # npub|Y -> token number
        self._tokens = _FingerprintMap()  # npub|token_id -> token number (live tokens)
        self._token_ids: list[str] = []  # token number -> token id
        self._seqs = array("q")  # token number -> seq of its row
        self._free: list[int] = []  # numbers of tokens no longer live
        self._shared: dict[tuple[int, int], set[int]] = {}  # npub|Y -> token numbers

    def __len__(self) -> int:
        return len(self._proofs)

    def token_of(self, npub: str, y: str) -> str | None:
        number = self._proofs.get(*_fingerprint(proof_key(npub, y)))
        return self._token_ids[number] if number is not None else None

    def token_besides(self, npub: str, y: str, token_id: str) -> str | None:
        """The live token that would hold `y` if `token_id` no longer listed it."""
        key = _fingerprint(proof_key(npub, y))
        holders = self._shared.get(key)
        if holders is None:
            current = self._proofs.get(*key)
            found = self._token_ids[current] if current is not None else None
            return found if found != token_id else None
        others = {t for t in holders if self._token_ids[t] != token_id}
        return self._token_ids[self._latest(others)] if others else None

    def apply(self, npub: str, token_id: str, update: LedgerUpdate) -> None:
        token = update.token
        if update.ignored or token is None:
            return
        tkey = _fingerprint(token_key(npub, token_id))
        number: int | None
        if token.live:
            number = self._register(tkey, token_id, token.seq)
        else:
            number = self._tokens.get(*tkey)
        if number is not None:
            for y in update.removed_ys:
                self._unlist(npub, y, number)
            if not token.live:
                self._tokens.delete(*tkey)
                self._free.append(number)
                return
            for y in token.ys:
                self._list(npub, y, number, newest=True)

    def rebuild(self, rows: Iterable[tuple[str, dict[str, Any]]]) -> None:
        self._clear()
        for key, row in rows:
            if row.get("status") == TokenStatus.DELETED.value:
                continue
            npub, token_id = split_key(key)
            number = self._register(_fingerprint(key), token_id, int(row.get("seq", 0)))
            for proof in row["proofs"]:
                self._list(npub, proof[0], number, newest=False)

    def _register(self, tkey: tuple[int, int], token_id: str, seq: int) -> int:
        number = self._tokens.get(*tkey)
        if number is None:
            if self._free:
                number = self._free.pop()
                self._token_ids[number] = token_id
            else:
                number = len(self._token_ids)
                self._token_ids.append(token_id)
                self._seqs.append(0)
            self._tokens.put(*tkey, number)
        self._seqs[number] = seq
        return number

    def _list(self, npub: str, y: str, number: int, *, newest: bool) -> None:
        key = _fingerprint(proof_key(npub, y))
        current = self._proofs.setdefault(*key, number)
        if current is None or current == number:
            return
        holders = self._shared.setdefault(key, {current})
        holders.add(number)
        # The live path applies events in order, so the token written now is the latest.
        self._proofs.put(*key, number if newest else self._latest(holders))

    def _unlist(self, npub: str, y: str, number: int) -> None:
        key = _fingerprint(proof_key(npub, y))
        holders = self._shared.get(key)
        if holders is None:
            if self._proofs.get(*key) == number:
                self._proofs.delete(*key)
            return
        holders.discard(number)
        self._proofs.put(*key, self._latest(holders))
        if len(holders) == 1:
            del self._shared[key]

    def _latest(self, numbers: Iterable[int]) -> int:
        # Ties (rows written before seq existed) go to the greater id: arbitrary but stable.
        return max(numbers, key=lambda t: (self._seqs[t], self._token_ids[t]))


def token_rows(items: Iterable[tuple[Any, Any]]) -> Iterator[tuple[str, dict[str, Any]]]:
    """The tokens table's rows as (key, row), skipping anything that is not one."""
    for key, row in items:
        if isinstance(key, str) and isinstance(row, dict) and "proofs" in row:
            yield key, row
