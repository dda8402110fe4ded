"""Classification table, policy verdicts, corrections and deterministic ids."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

import pytest

from streams.core.cashu import y_from_secret
from streams.core.contracts import DiscrepancyEvent, Recommendation
from streams.core.domain import (
    Action,
    BlockCode,
    DbStatus,
    DiscrepancyType,
    MintState,
    Severity,
    Source,
    Verdict,
)
from streams.core.ids import (
    correction_command_id,
    discrepancy_event_id,
    proof_check_event_id,
    stable_id,
)
from streams.core.settings import PolicySettings
from streams.recon.classification import Classification, ClassifiedProof, classify
from streams.recon.outputs import corrections_for, discrepancy_events, preflight_result
from streams.recon.policy import Policy, validate_summary

T = DiscrepancyType
U, P, S = MintState.UNSPENT, MintState.PENDING, MintState.SPENT
MINT = "http://127.0.0.1:3338"
WHEN = datetime(2025, 8, 8, 12, 0, tzinfo=UTC)
YS = [y_from_secret(f"proof {i}") for i in range(6)]

# Every cell: 3 DB states + absent, x 3 mint states (docs/ARCHITECTURE.md, "Classification").
TABLE = [
    (DbStatus.UNSPENT, U, None),
    (DbStatus.UNSPENT, P, (T.DB_UNSPENT_MINT_PENDING, Severity.LOW, Action.MONITOR)),
    (DbStatus.UNSPENT, S, (T.DB_UNSPENT_MINT_SPENT, Severity.HIGH, Action.MARK_SPENT)),
    (DbStatus.PENDING, U, (T.DB_PENDING_MINT_UNSPENT, Severity.LOW, Action.MONITOR)),
    (DbStatus.PENDING, P, None),
    (DbStatus.PENDING, S, (T.DB_PENDING_MINT_SPENT, Severity.MEDIUM, Action.MARK_SPENT)),
    (DbStatus.SPENT, U, (T.DB_SPENT_MINT_UNSPENT, Severity.MEDIUM, Action.INVESTIGATE)),
    (DbStatus.SPENT, P, (T.DB_SPENT_MINT_PENDING, Severity.LOW, Action.MONITOR)),
    (DbStatus.SPENT, S, None),
    (None, U, (T.PROOF_NOT_IN_DB, Severity.LOW, Action.AUDIT)),
    (None, P, (T.PROOF_NOT_IN_DB, Severity.LOW, Action.AUDIT)),
    (None, S, (T.PROOF_NOT_IN_DB, Severity.LOW, Action.AUDIT)),
]


@pytest.mark.parametrize(
    ("db", "mint", "expected"), TABLE, ids=[f"{db}-{mint}" for db, mint, _ in TABLE]
)
def test_every_cell_of_the_table(
    db: DbStatus | None, mint: MintState, expected: tuple[T, Severity, Action] | None
) -> None:
    found = classify(db, mint)
    assert found == (Classification(*expected) if expected else None)


def test_the_table_covers_every_type() -> None:
    assert {row[2][0] for row in TABLE if row[2]} == set(DiscrepancyType)


def checked(
    db: DbStatus | None, mint: MintState, i: int = 0, token: str | None = "tok-1"
) -> ClassifiedProof:
    return Policy().check(
        y=YS[i], amount=8, keyset_id="00ab", db_status=db, mint_state=mint, token_id=token
    )


# --- policy (the seed's defaults) --------------------------------------------------------------


def test_consistent_proofs_are_cleared() -> None:
    decision = Policy().decide([checked(DbStatus.UNSPENT, U, 0), checked(DbStatus.UNSPENT, U, 1)])
    assert decision.verdict is Verdict.CLEARED
    assert decision.code is None
    assert decision.operation_cleared
    assert (decision.discrepancies_found, decision.discrepancies_resolved) == (0, 0)


def test_high_blocks_the_melt() -> None:
    decision = Policy().decide([checked(DbStatus.UNSPENT, S, 0), checked(DbStatus.PENDING, S, 1)])
    assert decision.verdict is Verdict.BLOCKED
    assert decision.code is BlockCode.HIGH_SEVERITY_DISCREPANCIES
    assert not decision.operation_cleared
    assert decision.discrepancies_found == 2
    assert decision.discrepancies_resolved == 2  # both are corrected (MARK_SPENT) even so
    assert (decision.severity_counts.high, decision.severity_counts.medium) == (1, 1)


def test_multiple_high_discrepancies() -> None:
    decision = Policy().decide([checked(DbStatus.UNSPENT, S, i) for i in range(3)])
    assert decision.verdict is Verdict.BLOCKED
    assert decision.severity_counts.high == 3


# --- rule 1: the mint's word decides -----------------------------------------------------------


@pytest.mark.parametrize(
    ("db", "mint", "code"),
    [
        (DbStatus.PENDING, S, BlockCode.PROOF_SPENT_AT_MINT),  # MEDIUM, corrected, still SPENT
        (None, S, BlockCode.PROOF_SPENT_AT_MINT),  # not in the DB (LOW): finding 9
        (None, P, BlockCode.PROOF_PENDING_AT_MINT),
        (DbStatus.UNSPENT, P, BlockCode.PROOF_PENDING_AT_MINT),
        (DbStatus.SPENT, P, BlockCode.PROOF_PENDING_AT_MINT),
        (DbStatus.SPENT, S, BlockCode.PROOF_SPENT_AT_MINT),  # consistent, and still unmeltable
        (DbStatus.PENDING, P, BlockCode.PROOF_PENDING_AT_MINT),
    ],
)
def test_a_proof_the_mint_reports_spent_or_pending_never_clears(
    db: DbStatus | None, mint: MintState, code: BlockCode
) -> None:
    decision = Policy().decide([checked(db, mint), checked(DbStatus.UNSPENT, U, 1)])
    assert (decision.verdict, decision.code) == (Verdict.BLOCKED, code)


def test_the_mint_decides_under_any_policy() -> None:
    lenient = Policy(
        auto_correct=frozenset({Severity.MEDIUM, Severity.LOW}),
        severity_overrides={t: Severity.LOW for t in DiscrepancyType},
    )
    for db in (None, DbStatus.UNSPENT, DbStatus.PENDING, DbStatus.SPENT):
        for mint in (P, S):
            assert lenient.decide([checked(db, mint)]).verdict is Verdict.BLOCKED


# --- rule 2: the severity policy ---------------------------------------------------------------


def test_db_spent_mint_unspent_blocks_since_nothing_was_corrected() -> None:
    """Finding 15: the wallet already debited these proofs; paying them out again pays twice."""
    decision = Policy().decide([checked(DbStatus.SPENT, U), checked(DbStatus.UNSPENT, U, 1)])
    assert (decision.verdict, decision.code) == (
        Verdict.BLOCKED,
        BlockCode.UNRESOLVED_DISCREPANCIES,
    )
    assert decision.discrepancies_resolved == 0


def test_medium_clears_after_reconciliation_only_when_corrected() -> None:
    # No default pair gives a corrected MEDIUM the mint still calls UNSPENT; an override does.
    policy = Policy(severity_overrides={T.DB_SPENT_MINT_UNSPENT: Severity.LOW})
    proof = policy.check(y=YS[0], amount=1, keyset_id="k", db_status=DbStatus.SPENT, mint_state=U)
    assert policy.decide([proof]).verdict is Verdict.CLEARED
    corrected = replace(
        checked(DbStatus.SPENT, U),
        classification=Classification(T.DB_SPENT_MINT_UNSPENT, Severity.MEDIUM, Action.MARK_SPENT),
    )
    decision = Policy().decide([corrected])
    assert decision.verdict is Verdict.CLEARED_AFTER_RECONCILIATION
    assert decision.discrepancies_resolved == 1
    untokened = replace(corrected, token_id=None)  # nothing to address a correction to
    assert Policy().decide([untokened]).code is BlockCode.UNRESOLVED_DISCREPANCIES


@pytest.mark.parametrize(("db", "mint"), [(None, U), (DbStatus.PENDING, U)])
def test_low_is_logged_and_the_melt_proceeds(db: DbStatus | None, mint: MintState) -> None:
    decision = Policy().decide([checked(db, mint)])
    assert decision.verdict is Verdict.CLEARED
    assert decision.discrepancies_found == 1
    assert decision.discrepancies_resolved == 0
    assert decision.severity_counts.low == 1


def test_defaults_equal_the_settings_defaults() -> None:
    assert Policy.from_settings(PolicySettings()) == Policy()


@pytest.mark.parametrize(
    "code",
    [
        BlockCode.MINT_UNAVAILABLE,
        BlockCode.INVALID_REQUEST,
        BlockCode.DEADLINE_EXCEEDED,
        BlockCode.MINT_MISMATCH,
    ],
)
def test_fail_closed_verdicts(code: BlockCode) -> None:
    decision = Policy().blocked_verdict(code)
    assert decision.verdict is Verdict.BLOCKED
    assert decision.code is code
    assert not decision.operation_cleared
    assert decision.discrepancies_found == 0


@pytest.mark.parametrize(
    "code",
    [
        BlockCode.HIGH_SEVERITY_DISCREPANCIES,
        BlockCode.PROOF_SPENT_AT_MINT,
        BlockCode.UNRESOLVED_DISCREPANCIES,
    ],
)
def test_decided_codes_cannot_be_imposed(code: BlockCode) -> None:
    with pytest.raises(ValueError):
        Policy().blocked_verdict(code)


# --- custom policy -----------------------------------------------------------------------------


def test_custom_policy_blocks_medium_and_corrects_nothing() -> None:
    policy = Policy.from_settings(
        PolicySettings(blocking_severities="HIGH,MEDIUM", auto_correct_severities="")
    )
    proof = policy.check(y=YS[0], amount=1, keyset_id="k", db_status=DbStatus.SPENT, mint_state=U)
    decision = policy.decide([proof])
    assert (decision.verdict, decision.code) == (
        Verdict.BLOCKED,
        BlockCode.HIGH_SEVERITY_DISCREPANCIES,
    )
    assert decision.discrepancies_resolved == 0


@pytest.mark.parametrize(
    ("blocking", "auto_correct"),
    [("", "MEDIUM"), ("LOW", ""), ("MEDIUM", ""), ("HIGH,LOW", ""), ("HIGH,MEDIUM", "MEDIUM")],
)
def test_policy_settings_that_could_unblock_high_are_refused(
    blocking: str, auto_correct: str
) -> None:
    """Finding 19: `BLOCKING_SEVERITIES=LOW` meant "block LOW too" and unblocked HIGH."""
    with pytest.raises(ValueError):
        PolicySettings(blocking_severities=blocking, auto_correct_severities=auto_correct)
    with pytest.raises(ValueError):
        Policy(
            blocking=frozenset(Severity(s) for s in blocking.split(",") if s),
            auto_correct=frozenset(Severity(s) for s in auto_correct.split(",") if s),
        )


def test_severity_override() -> None:
    policy = Policy(severity_overrides={T.PROOF_NOT_IN_DB: Severity.HIGH})
    found = policy.classify(None, S)
    assert found == Classification(T.PROOF_NOT_IN_DB, Severity.HIGH, Action.AUDIT)
    assert policy.classify(DbStatus.UNSPENT, U) is None
    proof = policy.check(y=YS[0], amount=1, keyset_id="k", db_status=None, mint_state=U)
    decision = policy.decide([proof])
    assert (decision.verdict, decision.code) == (
        Verdict.BLOCKED,
        BlockCode.HIGH_SEVERITY_DISCREPANCIES,
    )


# --- validate summary --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("proofs", "valid", "high", "recommendation"),
    [
        ([(DbStatus.UNSPENT, U)], True, False, Recommendation.PROCEED),
        ([(None, U)], True, False, Recommendation.PROCEED),
        ([(DbStatus.PENDING, U)], True, False, Recommendation.PROCEED),
        ([(DbStatus.PENDING, S)], False, False, Recommendation.BLOCK),
        ([(DbStatus.UNSPENT, S), (DbStatus.PENDING, S)], False, True, Recommendation.BLOCK),
    ],
)
def test_validate_summary(
    proofs: list[tuple[DbStatus | None, MintState]],
    valid: bool,
    high: bool,
    recommendation: Recommendation,
) -> None:
    decision = Policy().decide([checked(db, mint, i) for i, (db, mint) in enumerate(proofs)])
    summary = validate_summary(decision)
    assert (summary.valid, summary.has_high_severity) == (valid, high)
    assert summary.recommendation is recommendation
    assert len(summary.discrepancies) == decision.discrepancies_found


def test_validate_summary_of_unknown_truth_blocks() -> None:
    summary = validate_summary(Policy().blocked_verdict(BlockCode.MINT_UNAVAILABLE))
    assert not summary.valid
    assert summary.recommendation is Recommendation.BLOCK


def test_preflight_result_from_decision() -> None:
    decision = Policy().decide([checked(DbStatus.UNSPENT, S, 0), checked(DbStatus.UNSPENT, U, 1)])
    result = preflight_result(
        decision,
        request_id="req-1",
        npub="npub1alice",
        mint_url=MINT,
        checked_proofs=2,
        duration_ms=3.0,
        answered_at=WHEN,
    )
    assert result.verdict is Verdict.BLOCKED
    assert result.code is BlockCode.HIGH_SEVERITY_DISCREPANCIES
    assert [line.y for line in result.discrepancies] == [YS[0]]


# --- events and corrections --------------------------------------------------------------------


def _events(
    proofs: list[ClassifiedProof], request_id: str | None = "req-1"
) -> list[DiscrepancyEvent]:
    return discrepancy_events(
        proofs,
        npub="npub1alice",
        mint_url=MINT,
        source=Source.PREFLIGHT,
        detected_at=WHEN,
        request_id=request_id,
    )


def test_discrepancy_events_only_for_discrepancies() -> None:
    events = _events([checked(DbStatus.UNSPENT, S, 0), checked(DbStatus.UNSPENT, U, 1)])
    assert [(e.y, e.type, e.action) for e in events] == [
        (YS[0], T.DB_UNSPENT_MINT_SPENT, Action.MARK_SPENT)
    ]
    assert events[0].token_id == "tok-1"


def test_mark_spent_discrepancies_become_one_command_per_token() -> None:
    proofs = [
        checked(DbStatus.UNSPENT, S, 0, "tok-1"),  # HIGH: blocks AND is fixed
        checked(DbStatus.PENDING, S, 1, "tok-1"),  # MEDIUM: pending -> spent
        checked(DbStatus.PENDING, S, 2, "tok-2"),
        checked(DbStatus.SPENT, U, 3, "tok-1"),  # INVESTIGATE: no correction
        checked(None, S, 4, None),  # no token: cannot be corrected
        checked(DbStatus.UNSPENT, P, 5, "tok-1"),  # MONITOR: no correction
    ]
    commands = corrections_for(_events(proofs), issued_at=WHEN)
    assert [(c.token_id, c.ys, c.set_status) for c in commands] == [
        ("tok-1", tuple(sorted([YS[0], YS[1]])), DbStatus.SPENT),
        ("tok-2", (YS[2],), DbStatus.SPENT),
    ]
    assert commands[0].reason == "DB_PENDING_MINT_SPENT,DB_UNSPENT_MINT_SPENT"
    assert len(commands[0].discrepancy_event_ids) == 2


def test_corrections_are_deterministic_and_order_free() -> None:
    proofs = [checked(DbStatus.UNSPENT, S, 0), checked(DbStatus.PENDING, S, 1)]
    first = corrections_for(_events(proofs), issued_at=WHEN)
    second = corrections_for(list(reversed(_events(proofs))), issued_at=WHEN)
    assert first == second


def test_skipped_when_nothing_to_correct() -> None:
    assert corrections_for(_events([checked(None, S, 0, None)]), issued_at=WHEN) == []


# --- deterministic ids -------------------------------------------------------------------------


def test_stable_id_is_deterministic_and_unambiguous() -> None:
    assert stable_id("a", "b") == stable_id("a", "b")
    assert stable_id("a|b", "c") != stable_id("a", "b|c")
    assert stable_id("ab") != stable_id("a", "b")


def test_stable_id_is_pinned() -> None:
    # A change of scheme would break deduplication of replays across versions.
    assert stable_id("discrepancy", "x") == "738d3f13-583d-5c17-ab5d-62e21cab5a33"


def _event_id(y: str = YS[0], request_id: str | None = None) -> str:
    return discrepancy_event_id(
        npub="npub1alice",
        mint_url=MINT,
        y=y,
        type=T.DB_UNSPENT_MINT_SPENT,
        source=Source.PREFLIGHT,
        request_id=request_id,
    )


def test_discrepancy_event_ids() -> None:
    assert _event_id(request_id="r1") == _event_id(request_id="r1")
    assert _event_id(request_id="r1") != _event_id(request_id="r2")
    assert _event_id() != _event_id(y=YS[1])
    events = _events([checked(DbStatus.UNSPENT, S, 0)])
    assert events[0].event_id == _event_id(request_id="req-1")
    assert _events([checked(DbStatus.UNSPENT, S, 0)]) == events  # same input, same event


def _command_id(ys: list[str]) -> str:
    return correction_command_id(
        npub="n", token_id="t", mint_url=MINT, ys=ys, set_status=DbStatus.SPENT
    )


def test_correction_command_id_ignores_y_order() -> None:
    assert _command_id([YS[0], YS[1]]) == _command_id([YS[1], YS[0]])
    assert _command_id([YS[0]]) != _command_id([YS[1]])


def test_proof_check_event_id() -> None:
    a = proof_check_event_id(source=Source.PREFLIGHT, mint_url=MINT, key="req-1")
    assert a == proof_check_event_id(source=Source.PREFLIGHT, mint_url=MINT, key="req-1")
    assert a != proof_check_event_id(source=Source.SWEEP, mint_url=MINT, key="req-1")
