"""Classification and policy: pure functions from (DB status, mint state) to verdicts and fixes.

The table is DESIGN.md's ("Classification"); which severities block a melt and which are corrected
automatically is policy (`PolicySettings`), with the seed's defaults: HIGH blocks, MEDIUM is
corrected and the melt proceeds, LOW is logged and the melt proceeds.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime

from streams.domain import (
    Action,
    BlockCode,
    DbStatus,
    DiscrepancyType,
    Lifecycle,
    MintState,
    Severity,
    Source,
    Verdict,
)
from streams.models import (
    CorrectionCommand,
    DiscrepancyEvent,
    PreflightDiscrepancy,
    PreflightResult,
    Recommendation,
    SeverityCounts,
    ValidateResponse,
)
from streams.settings import PolicySettings, check_policy_sets


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


# --- policy ------------------------------------------------------------------------------------


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


# --- deterministic ids -------------------------------------------------------------------------

# Fixed forever: changing it changes every id, and replays would no longer deduplicate.
ID_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "https://proofrecon.invalid/ids/v1")


def stable_id(*parts: str) -> str:
    """A UUIDv5 (SHA-1 based, RFC 9562) of the parts; the same parts always give the same id.

    Each part is length-prefixed, so ("a|b", "c") and ("a", "b|c") cannot collide.
    """
    name = "".join(f"{len(part)}:{part}" for part in parts)
    return str(uuid.uuid5(ID_NAMESPACE, name))


def discrepancy_event_id(
    *,
    npub: str,
    mint_url: str,
    y: str,
    type: DiscrepancyType,
    source: Source,
    request_id: str | None = None,
    lifecycle: Lifecycle = Lifecycle.OPENED,
    observation_id: str | None = None,
) -> str:
    """Names an observation, not a moment: a replayed or repeated detection of the same
    discrepancy (by the same source, for the same request) gets the same id, so consumers that
    deduplicate by id count it once. A preflight includes its request_id: each melt counts. A
    sweep or validation names its observation with `observation_id`, so a discrepancy that was
    resolved and later opened again is a new event, while a replay of the same finding is not."""
    parts = [
        "discrepancy",
        npub,
        mint_url,
        y,
        type.value,
        source.value,
        request_id or "",
        lifecycle.value,
    ]
    if observation_id:
        parts.append(observation_id)
    return stable_id(*parts)


def correction_command_id(
    *, npub: str, token_id: str, mint_url: str, ys: Iterable[str], set_status: DbStatus
) -> str:
    """Order-free in `ys`: the same fix for the same proofs is the same command."""
    return stable_id("correction", npub, token_id, mint_url, set_status.value, *sorted(ys))


def proof_check_event_id(*, source: Source, mint_url: str, key: str) -> str:
    """`key` names the check: the request_id of a preflight, a sweep round's id, and so on."""
    return stable_id("proof-check", source.value, mint_url, key)


# --- builders ------------------------------------------------------------------------------------


def discrepancy_events(
    classified: Iterable[ClassifiedProof],
    *,
    npub: str,
    mint_url: str,
    source: Source,
    detected_at: datetime,
    request_id: str | None = None,
    observation_id: str | None = None,
) -> list[DiscrepancyEvent]:
    """One OPENED event per discrepancy among `classified` (consistent proofs give none)."""
    events = []
    for proof in classified:
        if proof.classification is None:
            continue
        found = proof.classification
        event_id = discrepancy_event_id(
            npub=npub,
            mint_url=mint_url,
            y=proof.y,
            type=found.type,
            source=source,
            request_id=request_id,
            observation_id=observation_id,
        )
        events.append(
            DiscrepancyEvent(
                event_id=event_id,
                detected_at=detected_at,
                npub=npub,
                mint_url=mint_url,
                token_id=proof.token_id,
                Y=proof.y,
                amount=proof.amount,
                keyset_id=proof.keyset_id,
                type=found.type,
                severity=found.severity,
                db_status=proof.db_status,
                mint_state=proof.mint_state,
                action=found.action,
                source=source,
                request_id=request_id,
            )
        )
    return events


def preflight_result(
    decision: Decision,
    *,
    request_id: str,
    npub: str,
    mint_url: str,
    checked_proofs: int,
    duration_ms: float,
    answered_at: datetime,
    proofs_digest: str = "",
) -> PreflightResult:
    return PreflightResult(
        request_id=request_id,
        npub=npub,
        mint_url=mint_url,
        operation_cleared=decision.operation_cleared,
        verdict=decision.verdict,
        code=decision.code,
        discrepancies_found=decision.discrepancies_found,
        discrepancies_resolved=decision.discrepancies_resolved,
        severity_counts=decision.severity_counts,
        discrepancies=decision.summaries(),
        checked_proofs=checked_proofs,
        duration_ms=duration_ms,
        answered_at=answered_at,
        proofs_digest=proofs_digest,
    )


def corrections_for(
    events: Iterable[DiscrepancyEvent], *, issued_at: datetime
) -> list[CorrectionCommand]:
    """Group the correctable discrepancies into one command per (npub, token_id, mint_url).

    Only MARK_SPENT corrects anything; a proof without a token_id cannot be addressed in the wallet
    DB, so it is skipped. Output order is sorted, so the same events give the same commands.
    """
    groups: dict[tuple[str, str, str, DbStatus], list[DiscrepancyEvent]] = defaultdict(list)
    for event in events:
        status = CORRECTED_STATUS.get(event.action)
        if status is None or event.token_id is None:
            continue
        groups[(event.npub, event.token_id, event.mint_url, status)].append(event)
    return [_command(key, groups[key], issued_at) for key in sorted(groups)]


def _command(
    key: tuple[str, str, str, DbStatus], events: list[DiscrepancyEvent], issued_at: datetime
) -> CorrectionCommand:
    npub, token_id, mint_url, status = key
    ys = sorted({event.y for event in events})
    return CorrectionCommand(
        command_id=correction_command_id(
            npub=npub, token_id=token_id, mint_url=mint_url, ys=ys, set_status=status
        ),
        npub=npub,
        token_id=token_id,
        mint_url=mint_url,
        Ys=tuple(ys),
        set_status=status,
        reason=",".join(sorted({event.type.value for event in events})),
        discrepancy_event_ids=tuple(sorted({event.event_id for event in events})),
        issued_at=issued_at,
    )
