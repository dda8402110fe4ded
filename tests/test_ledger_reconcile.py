"""The ledger's and reconciliation's pure logic, without a broker."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from streams.core.cashu import y_from_secret
from streams.core.contracts import TokenStatusEvent
from streams.core.domain import DbStatus, Lifecycle, MintState, Source, TokenStatus
from streams.recon.ledger import ProofIndex, ProofRecord, TokenRecord, apply_token_event, token_rows
from streams.recon.policy import Policy
from streams.recon.reconcile import (
    OpenDiscrepancy,
    ProofToCheck,
    reconcile,
    resolve_after_ledger_change,
)

YS = [y_from_secret(f"ledger-test-{i}") for i in range(4)]
AT = datetime(2026, 1, 1, tzinfo=UTC)


def token_event(status: str, version: int, ys: list[str] = YS[:2]) -> TokenStatusEvent:
    return TokenStatusEvent.model_validate(
        {
            "event_id": f"e{version}",
            "npub": "npub1a",
            "token_id": "t1",
            "mint_url": "http://mint",
            "status": status,
            "version": version,
            "occurred_at": "2026-01-01T00:00:00Z",
            "proofs": [{"Y": y, "amount": 8, "keyset_id": "00ab"} for y in ys],
        }
    )


def _token(version: int, status: TokenStatus, ys: list[str]) -> TokenRecord:
    return TokenRecord(
        version,
        status,
        "http://mint",
        "2026-01-01T00:00:00+00:00",
        tuple((y, 8, "00ab") for y in ys),
    )


def test_new_token_is_one_row_and_the_index_learns_its_proofs() -> None:
    update = apply_token_event(token_event("unspent", 1), None)
    assert not update.ignored and update.status is DbStatus.UNSPENT
    assert update.token == _token(1, TokenStatus.UNSPENT, YS[:2])
    assert update.added_ys == tuple(YS[:2]) and update.removed_ys == ()
    index = ProofIndex()
    index.apply("npub1a", "t1", update)
    assert index.token_of("npub1a", YS[0]) == "t1" and index.token_of("npub1b", YS[0]) is None
    record = update.token.proof("t1", YS[1]) if update.token else None
    assert record == ProofRecord(
        "t1", DbStatus.UNSPENT, 8, "00ab", "http://mint", 1, record.updated_at if record else ""
    )


def test_a_status_change_adds_nothing_to_the_index() -> None:
    current = _token(1, TokenStatus.UNSPENT, YS[:2])
    update = apply_token_event(token_event("pending", 2), current)
    assert update.status is DbStatus.PENDING and update.added_ys == () == update.removed_ys


@pytest.mark.parametrize("version", [1, 2])
def test_older_or_equal_versions_are_ignored(version: int) -> None:
    current = _token(2, TokenStatus.SPENT, YS[:2])
    assert apply_token_event(token_event("unspent", version), current).ignored


def test_deleted_removes_the_tokens_proofs_and_keeps_a_tombstone() -> None:
    current = _token(3, TokenStatus.UNSPENT, YS[:2])
    update = apply_token_event(token_event("deleted", 4), current)
    assert update.status is None and update.removed_ys == tuple(YS[:2])
    assert update.token is not None and update.token.proofs == () and update.token.version == 4
    assert update.token.proof("t1", YS[0]) is None
    # The tombstone keeps replays of older versions out.
    assert apply_token_event(token_event("unspent", 3), update.token).ignored
    index = ProofIndex()
    index.apply("npub1a", "t1", apply_token_event(token_event("unspent", 1), None))
    index.apply("npub1a", "t1", update)
    assert len(index) == 0


def test_proofs_dropped_from_a_token_are_removed() -> None:
    current = _token(1, TokenStatus.UNSPENT, YS[:3])
    update = apply_token_event(token_event("pending", 2, YS[:2]), current)
    assert update.removed_ys == (YS[2],)


def test_index_rebuilds_from_the_token_rows() -> None:
    rows = [
        ("npub1a|t1", _token(1, TokenStatus.UNSPENT, YS[:2]).to_dict()),
        ("npub1b|t9", _token(1, TokenStatus.DELETED, []).to_dict()),
        ("npub1b|t2", _token(1, TokenStatus.SPENT, YS[2:3]).to_dict()),
    ]
    index = ProofIndex()
    index.rebuild(token_rows([*rows, ("junk", "not a row")]))
    assert len(index) == 3 and index.token_of("npub1b", YS[2]) == "t2"
    assert TokenRecord.from_dict(rows[0][1]) == _token(1, TokenStatus.UNSPENT, YS[:2])


def _open(
    y_type: str = "DB_UNSPENT_MINT_SPENT", mint_state: MintState = MintState.SPENT
) -> OpenDiscrepancy:
    data: dict[str, Any] = {
        "event_id": "opened-1",
        "type": y_type,
        "severity": "HIGH",
        "action": "MARK_SPENT",
        "db_status": "unspent",
        "mint_state": mint_state.value,
        "mint_url": "http://mint",
        "token_id": "t1",
        "amount": 8,
        "keyset_id": "00ab",
        "source": "preflight",
        "request_id": "r1",
        "opened_at": AT.isoformat(),
    }
    return OpenDiscrepancy.from_dict(data)


def _proof(y: str, status: DbStatus | None) -> ProofToCheck:
    record = (
        ProofRecord("t1", status, 8, "00ab", "http://mint", 1, AT.isoformat()) if status else None
    )
    return ProofToCheck(y, 8, "00ab", None, record)


def _reconcile(
    proofs: list[ProofToCheck], states: dict[str, MintState], open_now: dict[str, OpenDiscrepancy]
):  # type: ignore[no-untyped-def]
    return reconcile(
        proofs,
        states,
        open_now,
        policy=Policy(),
        npub="npub1a",
        mint_url="http://mint",
        source=Source.PREFLIGHT,
        at=AT,
        request_id="r2",
    )


def test_reconcile_opens_new_and_keeps_open_ones_quiet() -> None:
    proofs = [_proof(YS[0], DbStatus.UNSPENT), _proof(YS[1], DbStatus.UNSPENT)]
    states = {YS[0]: MintState.SPENT, YS[1]: MintState.SPENT}
    outcome = _reconcile(proofs, states, {YS[0]: _open()})
    assert [e.y for e in outcome.opened] == [YS[1]]  # YS[0] is already open: not re-emitted
    assert outcome.resolved == ()
    assert outcome.decision.discrepancies_found == 2  # the verdict still counts both
    assert [c.ys for c in outcome.corrections] == [(YS[1],)]
    assert set(outcome.open_changes) == {YS[1]}


def test_reconcile_resolves_what_the_mint_no_longer_contradicts() -> None:
    pending = _open("DB_UNSPENT_MINT_PENDING", MintState.PENDING)
    outcome = _reconcile(
        [_proof(YS[0], DbStatus.UNSPENT)], {YS[0]: MintState.UNSPENT}, {YS[0]: pending}
    )
    (resolved,) = outcome.resolved
    assert (
        resolved.lifecycle is Lifecycle.RESOLVED
        and resolved.type.value == "DB_UNSPENT_MINT_PENDING"
    )
    assert outcome.open_changes == {YS[0]: None}
    again = _reconcile(
        [_proof(YS[0], DbStatus.UNSPENT)], {YS[0]: MintState.UNSPENT}, {YS[0]: pending}
    )
    assert again.resolved[0].event_id == resolved.event_id  # deterministic


def test_ledger_change_resolves_fixed_and_deleted_proofs() -> None:
    open_now = {YS[0]: _open(), YS[1]: _open(), YS[2]: _open()}
    statuses = {YS[0]: DbStatus.SPENT, YS[1]: None, YS[2]: DbStatus.UNSPENT}
    resolved, changes = resolve_after_ledger_change(
        open_now, statuses, policy=Policy(), npub="npub1a", at=AT
    )
    assert sorted(e.y for e in resolved) == sorted(YS[:2])
    assert set(changes) == set(YS[:2])  # YS[2] still contradicts the mint
