"""The policy: which discrepancies block a melt, which are corrected, and the two deciding rules.

1. The mint's word decides: a proof the mint reports SPENT or PENDING is never cleared.
2. The severity policy (`PolicySettings`, the seed's defaults): a blocking severity (HIGH) blocks;
   an auto-corrected one (MEDIUM) proceeds only when a correction was actually issued for it;
   any other (LOW) is logged and proceeds.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace

from streams.core.contracts import (
    PreflightDiscrepancy,
    Recommendation,
    SeverityCounts,
    ValidateResponse,
)
from streams.core.domain import (
    Action,
    BlockCode,
    DbStatus,
    DiscrepancyType,
    MintState,
    Severity,
    Verdict,
)
from streams.core.settings import PolicySettings, check_policy_sets
from streams.recon.classification import Classification, ClassifiedProof, classify


@dataclass(frozen=True, slots=True)
class Decision:
    verdict: Verdict
    code: BlockCode | None
    discrepancies: tuple[ClassifiedProof, ...] = ()
    discrepancies_resolved: int = 0
    severity_counts: SeverityCounts = field(default_factory=SeverityCounts)

    @property
    def operation_cleared(self) -> bool:
        return self.verdict is not Verdict.BLOCKED

    @property
    def discrepancies_found(self) -> int:
        return len(self.discrepancies)

    def summaries(self) -> tuple[PreflightDiscrepancy, ...]:
        return tuple(proof.summary() for proof in self.discrepancies)


_FAIL_CLOSED_CODES = frozenset(
    {
        BlockCode.MINT_UNAVAILABLE,
        BlockCode.INVALID_REQUEST,
        BlockCode.DEADLINE_EXCEEDED,
        BlockCode.MINT_MISMATCH,
    }
)
# Rule 1: the mint's word decides. A proof in one of these states can never be melted.
_UNMELTABLE = {
    MintState.SPENT: BlockCode.PROOF_SPENT_AT_MINT,
    MintState.PENDING: BlockCode.PROOF_PENDING_AT_MINT,
}
# The DB status a correction sets, by action. Only MARK_SPENT corrects anything; INVESTIGATE,
# AUDIT and MONITOR are for people.
CORRECTED_STATUS: Mapping[Action, DbStatus] = {Action.MARK_SPENT: DbStatus.SPENT}


def correction_status(proof: ClassifiedProof) -> DbStatus | None:
    """The status a correction sets for this proof; None when no correction can be issued (no
    correcting action, or no token to address it by in the wallet DB)."""
    found = proof.classification
    if found is None or proof.token_id is None:
        return None
    return CORRECTED_STATUS.get(found.action)


@dataclass(frozen=True, slots=True)
class Policy:
    """Which severities block a melt and which are corrected automatically; severity overrides.

    Two rules decide a melt, in this order (docs/ARCHITECTURE.md, "Classification"):
    1. the mint's word: a proof the mint reports SPENT or PENDING is never cleared;
    2. this policy: a blocking severity blocks; an auto-corrected one proceeds only when a
       correction was actually issued for it; any other severity is logged and proceeds.
    """

    blocking: frozenset[Severity] = frozenset({Severity.HIGH})
    auto_correct: frozenset[Severity] = frozenset({Severity.MEDIUM})
    severity_overrides: Mapping[DiscrepancyType, Severity] = field(default_factory=dict)

    def __post_init__(self) -> None:
        check_policy_sets(self.blocking, self.auto_correct)

    @classmethod
    def from_settings(
        cls,
        settings: PolicySettings,
        severity_overrides: Mapping[DiscrepancyType, Severity] | None = None,
    ) -> Policy:
        return cls(
            blocking=frozenset(settings.blocking_severities),
            auto_correct=frozenset(settings.auto_correct_severities),
            severity_overrides=dict(severity_overrides or {}),
        )

    def classify(self, db_status: DbStatus | None, mint_state: MintState) -> Classification | None:
        """The table, with this policy's severity overrides applied."""
        found = classify(db_status, mint_state)
        if found is None or found.type not in self.severity_overrides:
            return found
        return replace(found, severity=self.severity_overrides[found.type])

    def check(
        self,
        *,
        y: str,
        amount: int,
        keyset_id: str,
        db_status: DbStatus | None,
        mint_state: MintState,
        token_id: str | None = None,
    ) -> ClassifiedProof:
        return ClassifiedProof(
            y=y,
            amount=amount,
            keyset_id=keyset_id,
            db_status=db_status,
            mint_state=mint_state,
            classification=self.classify(db_status, mint_state),
            token_id=token_id,
        )

    def decide(self, classified: Sequence[ClassifiedProof]) -> Decision:
        """The seed's performPreFlightReconciliation verdict over the checked proofs.

        Corrections are issued whatever the verdict (a HIGH DB_UNSPENT_MINT_SPENT both blocks the
        melt and fixes the DB), so `discrepancies_resolved` counts them in every case.
        """
        found = tuple(proof for proof in classified if proof.classification is not None)
        severities = [proof.classification.severity for proof in found if proof.classification]
        corrected = [proof for proof in found if correction_status(proof) is not None]
        code = self._block_code(classified, found)
        verdict = Verdict.BLOCKED if code is not None else Verdict.CLEARED
        if code is None and any(self._severity(p) in self.auto_correct for p in corrected):
            verdict = Verdict.CLEARED_AFTER_RECONCILIATION
        return Decision(verdict, code, found, len(corrected), SeverityCounts.of(severities))

    def _block_code(
        self, classified: Sequence[ClassifiedProof], found: Sequence[ClassifiedProof]
    ) -> BlockCode | None:
        if any(self._severity(proof) in self.blocking for proof in found):
            return BlockCode.HIGH_SEVERITY_DISCREPANCIES  # the seed's code, first
        states = {proof.mint_state for proof in classified}
        for state, code in _UNMELTABLE.items():
            if state in states:
                return code
        unresolved = [
            proof
            for proof in found
            if self._severity(proof) in self.auto_correct and correction_status(proof) is None
        ]
        return BlockCode.UNRESOLVED_DISCREPANCIES if unresolved else None

    @staticmethod
    def _severity(proof: ClassifiedProof) -> Severity | None:
        return proof.classification.severity if proof.classification else None

    def blocked_verdict(self, code: BlockCode) -> Decision:
        """Fail closed: the mint's truth or the request itself is not to be had."""
        if code not in _FAIL_CLOSED_CODES:
            raise ValueError(f"{code} is decided from discrepancies, not imposed")
        return Decision(Verdict.BLOCKED, code)

    def recommendation(self, decision: Decision) -> Recommendation:
        if decision.verdict is Verdict.BLOCKED:
            return Recommendation.BLOCK
        if decision.verdict is Verdict.CLEARED_AFTER_RECONCILIATION:
            return Recommendation.RECONCILE_FIRST
        return Recommendation.PROCEED


def validate_summary(decision: Decision, policy: Policy | None = None) -> ValidateResponse:
    """The seed's validateProofStatesForOperation: {valid, has_high_severity, recommendation}.

    `valid` means the melt would be cleared (possibly after reconciliation); `has_high_severity`
    counts HIGH discrepancies whatever the policy blocks. Recommendation: PROCEED (consistent, or
    only logged discrepancies), RECONCILE_FIRST (auto-corrected ones), BLOCK (a blocking one, or
    the mint's truth is unknown).
    """
    return ValidateResponse(
        valid=decision.operation_cleared,
        has_high_severity=decision.severity_counts.high > 0,
        recommendation=(policy or Policy()).recommendation(decision),
        discrepancies=decision.summaries(),
    )
