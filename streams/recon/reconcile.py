"""One npub's proofs at one mint, checked: what to emit and what to remember. Pure.

Both the preflight (a melt's proofs) and the findings path (sweep, subscriptions, validate) come
here with the ledger's records, the mint's states and the discrepancies already OPEN for those
proofs. The result says which discrepancy events to emit (OPENED for new ones, RESOLVED for open
ones the mint or the DB no longer contradicts), which corrections to issue, and how the open table
changes. An open discrepancy is never emitted twice, so replays add nothing downstream.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

from streams.core.contracts import CorrectionCommand, DiscrepancyEvent
from streams.core.domain import (
    Action,
    DbStatus,
    DiscrepancyType,
    Lifecycle,
    MintState,
    Severity,
    Source,
)
from streams.core.ids import stable_id
from streams.recon.classification import ClassifiedProof
from streams.recon.ledger import ProofRecord
from streams.recon.outputs import corrections_for, discrepancy_events
from streams.recon.policy import Decision, Policy


@dataclass(frozen=True, slots=True)
class OpenDiscrepancy:
    """A discrepancy emitted as OPENED and not yet RESOLVED (`npub|Y` in the open table)."""

    event_id: str
    type: DiscrepancyType
    severity: Severity
    action: Action
    db_status: DbStatus | None
    mint_state: MintState
    mint_url: str
    token_id: str | None
    amount: int
    keyset_id: str
    source: Source
    request_id: str | None
    opened_at: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> OpenDiscrepancy:
        return cls(
            **{
                **data,
                "type": DiscrepancyType(data["type"]),
                "severity": Severity(data["severity"]),
                "action": Action(data["action"]),
                "db_status": DbStatus(data["db_status"]) if data["db_status"] else None,
                "mint_state": MintState(data["mint_state"]),
                "source": Source(data["source"]),
            }
        )

    @classmethod
    def of(cls, event: DiscrepancyEvent) -> OpenDiscrepancy:
        return cls(
            event_id=event.event_id,
            type=event.type,
            severity=event.severity,
            action=event.action,
            db_status=event.db_status,
            mint_state=event.mint_state,
            mint_url=event.mint_url,
            token_id=event.token_id,
            amount=event.amount,
            keyset_id=event.keyset_id,
            source=event.source,
            request_id=event.request_id,
            opened_at=event.detected_at.isoformat(),
        )

    def resolved_event(
        self, *, npub: str, y: str, db_status: DbStatus | None, mint_state: MintState, at: datetime
    ) -> DiscrepancyEvent:
        """The RESOLVED twin of the OPENED event; its id derives from the opened one's."""
        return DiscrepancyEvent(
            event_id=stable_id("resolved", self.event_id),
            detected_at=at,
            npub=npub,
            mint_url=self.mint_url,
            token_id=self.token_id,
            Y=y,
            amount=self.amount,
            keyset_id=self.keyset_id,
            type=self.type,
            severity=self.severity,
            db_status=db_status,
            mint_state=mint_state,
            action=self.action,
            source=self.source,
            request_id=self.request_id,
            lifecycle=Lifecycle.RESOLVED,
        )


@dataclass(frozen=True, slots=True)
class ProofToCheck:
    """A proof of the check: its identity and the ledger's record of it (None: not in the DB)."""

    y: str
    amount: int
    keyset_id: str
    token_id: str | None
    record: ProofRecord | None


@dataclass(frozen=True, slots=True)
class Outcome:
    classified: tuple[ClassifiedProof, ...]
    decision: Decision
    opened: tuple[DiscrepancyEvent, ...]
    resolved: tuple[DiscrepancyEvent, ...]
    corrections: tuple[CorrectionCommand, ...]
    # Y -> the open discrepancy to store, or None to delete it.
    open_changes: Mapping[str, OpenDiscrepancy | None] = field(default_factory=dict)

    @property
    def events(self) -> tuple[DiscrepancyEvent, ...]:
        return self.resolved + self.opened


def reconcile(
    proofs: Sequence[ProofToCheck],
    states: Mapping[str, MintState],
    open_now: Mapping[str, OpenDiscrepancy],
    *,
    policy: Policy,
    npub: str,
    mint_url: str,
    source: Source,
    at: datetime,
    request_id: str | None = None,
    observation_id: str | None = None,
) -> Outcome:
    """Classify `proofs` against `states` and diff the result with the open discrepancies."""
    classified = tuple(_classify(policy, proof, states[proof.y]) for proof in proofs)
    fresh = [
        c
        for c in classified
        if c.classification is not None
        and (c.y not in open_now or open_now[c.y].type is not c.classification.type)
    ]
    opened = tuple(
        discrepancy_events(
            fresh,
            npub=npub,
            mint_url=mint_url,
            source=source,
            detected_at=at,
            request_id=request_id,
            observation_id=observation_id,
        )
    )
    resolved: list[DiscrepancyEvent] = []
    changes: dict[str, OpenDiscrepancy | None] = {e.y: OpenDiscrepancy.of(e) for e in opened}
    for c in classified:
        previous = open_now.get(c.y)
        if previous is None:
            continue
        still = c.classification is not None and c.classification.type is previous.type
        if not still:
            resolved.append(
                previous.resolved_event(
                    npub=npub, y=c.y, db_status=c.db_status, mint_state=c.mint_state, at=at
                )
            )
            changes.setdefault(c.y, None)
    return Outcome(
        classified=classified,
        decision=policy.decide(classified),
        opened=opened,
        resolved=tuple(resolved),
        corrections=tuple(corrections_for(opened, issued_at=at)),
        open_changes=changes,
    )


def resolve_after_ledger_change(
    open_now: Mapping[str, OpenDiscrepancy],
    db_statuses: Mapping[str, DbStatus | None],
    *,
    policy: Policy,
    npub: str,
    at: datetime,
) -> tuple[list[DiscrepancyEvent], dict[str, OpenDiscrepancy | None]]:
    """The wallet DB changed for some proofs with open discrepancies: resolve what it fixed.

    Judged against the mint state last seen. A proof the wallet deleted is resolved too: the wallet
    no longer claims it, which is what every open discrepancy about it asked for.
    """
    resolved: list[DiscrepancyEvent] = []
    changes: dict[str, OpenDiscrepancy | None] = {}
    for y, previous in open_now.items():
        db_status = db_statuses[y]
        found = policy.classify(db_status, previous.mint_state) if db_status else None
        if found is not None and found.type is previous.type:
            continue
        resolved.append(
            previous.resolved_event(
                npub=npub, y=y, db_status=db_status, mint_state=previous.mint_state, at=at
            )
        )
        changes[y] = None
    return resolved, changes


def _classify(policy: Policy, proof: ProofToCheck, mint_state: MintState) -> ClassifiedProof:
    record = proof.record
    return policy.check(
        y=proof.y,
        amount=proof.amount,
        keyset_id=proof.keyset_id,
        db_status=record.status if record else None,
        mint_state=mint_state,
        token_id=proof.token_id or (record.token_id if record else None),
    )
