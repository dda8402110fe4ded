"""Builders of what a check emits: discrepancy events, the preflight answer, corrections."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from datetime import datetime

from streams.core.contracts import CorrectionCommand, DiscrepancyEvent, PreflightResult
from streams.core.domain import DbStatus, Source, Truth
from streams.core.ids import correction_command_id, discrepancy_event_id
from streams.recon.classification import ClassifiedProof
from streams.recon.policy import CORRECTED_STATUS, Decision


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
    truth: Truth | None = None,
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
        truth=truth,
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
