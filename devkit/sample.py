"""Sample events for the sink's tests, benchmarks and demos, built through the contract models.

Deterministic for a seed: the same seed gives the same events and the same ids, as the worker's
deterministic ids do for the same input.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from streams.core.cashu import y_from_secret
from streams.core.contracts import (
    CorrectionCommand,
    DiscrepancyEvent,
    PreflightDiscrepancy,
    PreflightResult,
    ProofCheckEvent,
    SeverityCounts,
)
from streams.core.domain import (
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
from streams.recon.classification import NOT_IN_DB, TABLE

# type -> (severity, db status, mint state, action), read off the classification table itself.
CLASSES: dict[DiscrepancyType, tuple[Severity, DbStatus | None, MintState, Action]] = {
    found.type: (found.severity, db_status, state, found.action)
    for (db_status, state), found in TABLE.items()
}
CLASSES[NOT_IN_DB.type] = (NOT_IN_DB.severity, None, MintState.SPENT, NOT_IN_DB.action)


@dataclass
class SampleSet:
    discrepancies: list[DiscrepancyEvent] = field(default_factory=list)
    proof_checks: list[ProofCheckEvent] = field(default_factory=list)
    preflights: list[PreflightResult] = field(default_factory=list)
    corrections: list[CorrectionCommand] = field(default_factory=list)


def sample_ys(n: int, seed: int = 0) -> list[str]:
    """`n` valid Ys (hash_to_curve of made-up secrets; the secrets are not kept)."""
    return [y_from_secret(f"sample-{seed}-{i}") for i in range(n)]


def sample_events(
    *,
    start: datetime,
    hours: int,
    mints: list[str],
    per_hour: int,
    seed: int = 0,
    ys: list[str] | None = None,
) -> SampleSet:
    """Events spread over `hours` hours from `start` (UTC), over `mints`.

    Per hour and mint: `per_hour` discrepancies of random types (some RESOLVED twins), proof-check
    events whose counts are the denominator, preflight answers (some BLOCKED) and corrections.
    """
    rng = random.Random(seed)
    ys = ys or sample_ys(64, seed)
    out = SampleSet()
    for h in range(hours):
        hour = start + timedelta(hours=h)
        for m, mint in enumerate(mints):
            tag = f"{seed}-{h}-{m}"
            out.discrepancies += [
                _discrepancy(rng, f"d-{tag}-{i}", hour, mint, ys) for i in range(per_hour)
            ]
            out.proof_checks += [_proof_check(rng, f"c-{tag}-{i}", hour, mint) for i in range(3)]
            out.preflights += [_preflight(rng, f"r-{tag}-{i}", mint, hour, ys) for i in range(4)]
            out.corrections.append(_correction(rng, tag, hour, mint, ys))
    return out


def _discrepancy(
    rng: random.Random, event_id: str, hour: datetime, mint: str, ys: list[str]
) -> DiscrepancyEvent:
    kind = rng.choice(list(CLASSES))
    severity, db_status, state, action = CLASSES[kind]
    return DiscrepancyEvent(
        event_id=event_id,
        detected_at=hour + timedelta(seconds=rng.randrange(3600)),
        npub=f"npub{rng.randrange(20)}",
        mint_url=mint,
        token_id=f"tok{rng.randrange(50)}" if db_status else None,
        Y=rng.choice(ys),
        amount=rng.choice([1, 2, 4, 8, 16, 32, 64]),
        keyset_id="009a1f293253e41e",
        type=kind,
        severity=severity,
        db_status=db_status,
        mint_state=state,
        action=action,
        source=rng.choice([Source.PREFLIGHT, Source.SWEEP]),
        request_id=None,
        lifecycle=Lifecycle.RESOLVED if rng.random() < 0.1 else Lifecycle.OPENED,
    )


def _proof_check(rng: random.Random, event_id: str, hour: datetime, mint: str) -> ProofCheckEvent:
    return ProofCheckEvent(
        event_id=event_id,
        checked_at=hour + timedelta(seconds=rng.randrange(3600)),
        mint_url=mint,
        source=rng.choice([Source.PREFLIGHT, Source.SWEEP]),
        proofs_checked=rng.randrange(50, 500),
    )


def _correction(
    rng: random.Random, tag: str, hour: datetime, mint: str, ys: list[str]
) -> CorrectionCommand:
    return CorrectionCommand(
        command_id=f"k-{tag}",
        npub="npub1",
        token_id="tok1",  # noqa: S106 - a token's id, not a credential
        mint_url=mint,
        Ys=(ys[0], ys[1]),
        set_status=DbStatus.SPENT,
        reason="DB_UNSPENT_MINT_SPENT",
        discrepancy_event_ids=(f"d-{tag}-0",),
        issued_at=hour + timedelta(seconds=rng.randrange(3600)),
    )


def _preflight(
    rng: random.Random, request_id: str, mint: str, hour: datetime, ys: list[str]
) -> PreflightResult:
    blocked = rng.random() < 0.4
    code = rng.choice([BlockCode.HIGH_SEVERITY_DISCREPANCIES, BlockCode.MINT_UNAVAILABLE])
    found = (
        [
            PreflightDiscrepancy(
                Y=ys[2],
                type=DiscrepancyType.DB_UNSPENT_MINT_SPENT,
                severity=Severity.HIGH,
                db_status=DbStatus.UNSPENT,
                mint_state=MintState.SPENT,
                action=Action.MARK_SPENT,
            )
        ]
        if blocked and code is BlockCode.HIGH_SEVERITY_DISCREPANCIES
        else []
    )
    return PreflightResult(
        request_id=request_id,
        npub="npub1",
        mint_url=mint,
        operation_cleared=not blocked,
        verdict=Verdict.BLOCKED if blocked else Verdict.CLEARED,
        code=code if blocked else None,
        discrepancies_found=len(found),
        discrepancies_resolved=0,
        severity_counts=SeverityCounts.of(d.severity for d in found),
        discrepancies=tuple(found),
        checked_proofs=rng.randrange(1, 20),
        duration_ms=round(rng.uniform(2, 80), 3),
        answered_at=hour + timedelta(seconds=rng.randrange(3600)),
    )
