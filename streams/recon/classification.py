"""The classification table: (DB status, mint state) to a discrepancy type, severity and action.

The first five types are the seed's, with its names; the last two it left out. Severities are the
seed's and describe the discrepancy (for analytics and alerts); whether a melt proceeds is the
policy's business (streams.recon.policy).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from streams.core.contracts import PreflightDiscrepancy
from streams.core.domain import Action, DbStatus, DiscrepancyType, MintState, Severity


@dataclass(frozen=True, slots=True)
class Classification:
    type: DiscrepancyType
    severity: Severity
    action: Action


_D = DiscrepancyType
NOT_IN_DB = Classification(_D.PROOF_NOT_IN_DB, Severity.LOW, Action.AUDIT)
TABLE: Mapping[tuple[DbStatus, MintState], Classification] = {
    (DbStatus.UNSPENT, MintState.SPENT): Classification(
        _D.DB_UNSPENT_MINT_SPENT, Severity.HIGH, Action.MARK_SPENT
    ),
    (DbStatus.SPENT, MintState.UNSPENT): Classification(
        _D.DB_SPENT_MINT_UNSPENT, Severity.MEDIUM, Action.INVESTIGATE
    ),
    (DbStatus.PENDING, MintState.SPENT): Classification(
        _D.DB_PENDING_MINT_SPENT, Severity.MEDIUM, Action.MARK_SPENT
    ),
    (DbStatus.UNSPENT, MintState.PENDING): Classification(
        _D.DB_UNSPENT_MINT_PENDING, Severity.LOW, Action.MONITOR
    ),
    (DbStatus.PENDING, MintState.UNSPENT): Classification(
        _D.DB_PENDING_MINT_UNSPENT, Severity.LOW, Action.MONITOR
    ),
    (DbStatus.SPENT, MintState.PENDING): Classification(
        _D.DB_SPENT_MINT_PENDING, Severity.LOW, Action.MONITOR
    ),
}


def classify(db_status: DbStatus | None, mint_state: MintState) -> Classification | None:
    """The table: None when both sides agree; `db_status=None` means the proof is not in the DB."""
    if db_status is None:
        return NOT_IN_DB
    return TABLE.get((db_status, mint_state))  # the three absent pairs are the consistent ones


@dataclass(frozen=True, slots=True)
class ClassifiedProof:
    """One proof checked: both sides, and the classification (None when consistent)."""

    y: str
    amount: int
    keyset_id: str
    db_status: DbStatus | None
    mint_state: MintState
    classification: Classification | None
    token_id: str | None = None

    def summary(self) -> PreflightDiscrepancy:
        """The preflight answer's line for this proof; only for discrepancies."""
        found = self.classification
        if found is None:
            raise ValueError("a consistent proof has no discrepancy")
        return PreflightDiscrepancy(
            Y=self.y,
            type=found.type,
            severity=found.severity,
            db_status=self.db_status,
            mint_state=self.mint_state,
            action=found.action,
        )
