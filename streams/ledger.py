"""The wallet DB's view of each proof, as kept in the ledger table, and how events change it.

Pure: the agent reads the current records from its tables, asks `apply_token_event` what to
write, and writes it. Versions are monotonic per token, so a replay or a reordered older event
never regresses a proof's status; a deleted token keeps a tombstone carrying its version for the
same reason.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

from streams.domain import DbStatus, TokenStatus
from streams.models import TokenStatusEvent


def proof_key(npub: str, y: str) -> str:
    """Table key of a proof. Starts with the npub, so it lives on the npub's partition."""
    return f"{npub}|{y}"


def token_key(npub: str, token_id: str) -> str:
    return f"{npub}|{token_id}"


@dataclass(frozen=True, slots=True)
class ProofRecord:
    """One proof as the wallet DB records it (`npub|Y` in the ledger table)."""

    token_id: str
    status: DbStatus
    amount: int
    keyset_id: str
    mint_url: str
    version: int
    updated_at: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ProofRecord:
        return cls(**{**data, "status": DbStatus(data["status"])})


@dataclass(frozen=True, slots=True)
class TokenRecord:
    """A token's last applied version and its proofs' Ys (`npub|token_id` in the tokens table)."""

    version: int
    status: TokenStatus
    ys: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        return {"version": self.version, "status": self.status.value, "ys": list(self.ys)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TokenRecord:
        return cls(data["version"], TokenStatus(data["status"]), tuple(data["ys"]))


@dataclass(frozen=True, slots=True)
class LedgerUpdate:
    """What one token-status event changes. `ignored` events change nothing."""

    ignored: bool
    token: TokenRecord | None = None
    upserts: tuple[tuple[str, ProofRecord], ...] = ()
    removed_ys: tuple[str, ...] = ()

    @property
    def touched_ys(self) -> tuple[str, ...]:
        return tuple(y for y, _ in self.upserts) + self.removed_ys


IGNORED = LedgerUpdate(ignored=True)


def apply_token_event(event: TokenStatusEvent, current: TokenRecord | None) -> LedgerUpdate:
    """The ledger writes for `event`, given the token's current record (None if never seen)."""
    if current is not None and event.version <= current.version:
        return IGNORED
    new_ys = tuple(proof.y for proof in event.proofs)
    old_ys = current.ys if current else ()
    if event.status is TokenStatus.DELETED:
        return LedgerUpdate(False, TokenRecord(event.version, event.status, ()), (), old_ys)
    updated_at = event.occurred_at.astimezone(UTC).isoformat()
    status = DbStatus(event.status.value)
    upserts = tuple(
        (
            proof.y,
            ProofRecord(
                token_id=event.token_id,
                status=status,
                amount=proof.amount,
                keyset_id=proof.keyset_id,
                mint_url=event.mint_url,
                version=event.version,
                updated_at=updated_at,
            ),
        )
        for proof in event.proofs
    )
    # A token's proofs do not change in Cashu, but a wallet may re-issue a token id with fewer
    # proofs after a partial swap; the ones it no longer lists are no longer in its DB.
    listed = set(new_ys)
    dropped = tuple(y for y in old_ys if y not in listed)
    return LedgerUpdate(False, TokenRecord(event.version, event.status, new_ys), upserts, dropped)


def now_utc() -> datetime:
    return datetime.now(UTC)
