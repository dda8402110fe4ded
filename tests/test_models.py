"""Event contracts: round trips, strict inputs, secret handling and error messages."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from typing import Any

import pytest
from pydantic import BaseModel, ValidationError

from streams.core.cashu import SCRUBBED, y_from_secret
from streams.core.contracts import (
    Alert,
    ContractLimits,
    CorrectionCommand,
    DeadLetterRecord,
    DiscrepancyEvent,
    PreflightDiscrepancy,
    PreflightResult,
    ProofCheckEvent,
    Recommendation,
    SeverityCounts,
    TokenStatusEvent,
    ValidateRequest,
    ValidateResponse,
    extract_npub,
    extract_reply_to,
    extract_request_id,
    parse_contract,
    parse_melt_request,
    parse_token_status,
    parse_validate_request,
    to_json_bytes,
    to_json_dict,
)
from streams.core.domain import (
    Action,
    AlertKind,
    BlockCode,
    DbStatus,
    DiscrepancyType,
    ErrorKind,
    Lifecycle,
    MintState,
    Severity,
    Source,
    TokenStatus,
    Verdict,
)
from streams.core.errors import ContractError
from streams.core.settings import PolicySettings

SECRET = "a-very-recognisable-proof-secret-4f1c2e"
Y_OF_SECRET = y_from_secret(SECRET)
Y1 = y_from_secret("proof one")
Y2 = y_from_secret("proof two")
OFF_CURVE_Y = "02" + "00" * 32
MINT = "http://127.0.0.1:3338"
WHEN = datetime(2025, 8, 8, 12, 0, 0, 123000, tzinfo=UTC)


def proof(y: str = Y1, **extra: Any) -> dict[str, Any]:
    return {"Y": y, "amount": 8, "keyset_id": "009a1f293253e41e", **extra}


def token_status(**changes: Any) -> dict[str, Any]:
    event = {
        "event_id": "ev-1",
        "npub": "npub1alice",
        "token_id": "tok-1",
        "mint_url": MINT,
        "status": "unspent",
        "version": 3,
        "occurred_at": "2025-08-08T12:00:00.123Z",
        "transaction_type": "receive",
        "proofs": [proof(Y1), proof(Y2)],
    }
    return {**event, **changes}


def melt_request(**changes: Any) -> dict[str, Any]:
    request = {
        "request_id": "req-1",
        "npub": "npub1alice",
        "mint_url": MINT,
        "quote_id": "q-1",
        "amount": 16,
        "proofs": [proof(Y1, token_id="tok-1"), proof(Y2)],
        "requested_at": 1754654400123,
        "reply_to": "wallet.replies",
        "deadline_ms": 1500,
    }
    return {**request, **changes}


def raw(data: object) -> bytes:
    return json.dumps(data).encode()


# --- inputs ------------------------------------------------------------------------------------


def test_token_status_parses_and_round_trips() -> None:
    event = parse_token_status(raw(token_status()))
    assert event.status is TokenStatus.UNSPENT
    assert event.occurred_at == WHEN
    assert [p.y for p in event.proofs] == [Y1, Y2]
    assert parse_token_status(to_json_bytes(event)) == event


def test_melt_request_parses_epoch_ms_and_round_trips() -> None:
    request = parse_melt_request(raw(melt_request()))
    assert request.requested_at == WHEN
    assert request.proofs[0].token_id == "tok-1"
    assert request.proofs[1].token_id is None
    assert parse_melt_request(to_json_bytes(request)) == request


def test_validate_request_round_trips() -> None:
    body = {"npub": "npub1alice", "mint_url": MINT + "/", "proofs": [proof()]}
    request = parse_validate_request(raw(body))
    assert request.mint_url == MINT
    assert ValidateRequest.model_validate_json(to_json_bytes(request)) == request


def test_json_uses_capital_y_and_utc_z_timestamps() -> None:
    out = json.loads(to_json_bytes(parse_token_status(raw(token_status()))))
    assert out["proofs"][0] == {"Y": Y1, "amount": 8, "keyset_id": "009a1f293253e41e"}
    assert out["occurred_at"] == "2025-08-08T12:00:00.123Z"


def test_mint_url_loses_its_trailing_slash() -> None:
    assert parse_token_status(raw(token_status(mint_url=MINT + "/"))).mint_url == MINT


def test_offsets_are_converted_to_utc_and_microseconds_dropped() -> None:
    event = parse_token_status(raw(token_status(occurred_at="2025-08-08T14:00:00.123456+02:00")))
    assert event.occurred_at == WHEN


def test_uppercase_y_is_normalised() -> None:
    event = parse_token_status(raw(token_status(proofs=[proof(Y1.upper())])))
    assert event.proofs[0].y == Y1


def test_limits_come_from_policy_settings() -> None:
    limits = ContractLimits.from_settings(
        PolicySettings(max_proofs_per_event=1, max_secret_length=10)
    )
    assert limits == ContractLimits(max_proofs=1, max_secret_length=10)
    with pytest.raises(ContractError):
        parse_token_status(raw(token_status()), limits)


# --- secret at the edge ------------------------------------------------------------------------


def _secret_proof(**extra: Any) -> dict[str, Any]:
    return {"secret": SECRET, "amount": 8, "keyset_id": "009a1f293253e41e", **extra}


def _assert_no_secret(model: BaseModel) -> None:
    assert SECRET not in repr(model)
    assert SECRET not in json.dumps(model.model_dump(mode="json"))
    assert SECRET.encode() not in to_json_bytes(model)


def test_secret_becomes_y_and_is_gone() -> None:
    event = parse_token_status(raw(token_status(proofs=[_secret_proof()])))
    assert event.proofs[0].y == Y_OF_SECRET
    _assert_no_secret(event)


def test_melt_proof_secret_becomes_y() -> None:
    request = parse_melt_request(raw(melt_request(proofs=[_secret_proof(token_id="tok-1")])))
    assert request.proofs[0].y == Y_OF_SECRET
    _assert_no_secret(request)


def test_secret_and_matching_y_are_accepted() -> None:
    event = parse_token_status(raw(token_status(proofs=[_secret_proof(Y=Y_OF_SECRET.upper())])))
    assert event.proofs[0].y == Y_OF_SECRET


def test_the_callers_dict_keeps_its_secret() -> None:
    data = token_status(proofs=[_secret_proof()])
    TokenStatusEvent.model_validate(data)
    assert data["proofs"][0]["secret"] == SECRET


# --- invalid inputs ----------------------------------------------------------------------------


def _proofs_with(**changes: Any) -> list[dict[str, Any]]:
    return [{**_secret_proof(), **changes}]


INVALID_TOKEN_STATUS = {
    "unknown status": (token_status(status="burnt"), "status"),
    "negative version": (token_status(version=-1), "version"),
    "string version": (token_status(version="3"), "version"),
    "missing event_id": ({k: v for k, v in token_status().items() if k != "event_id"}, "event_id"),
    "empty event_id": (token_status(event_id=""), "event_id"),
    # An unknown key is never repeated: input keys can be secrets (review finding 8).
    "unknown field": (token_status(colour="red"), "<extra field>"),
    "zero amount": (token_status(proofs=_proofs_with(amount=0)), "proofs.0.amount"),
    "negative amount": (token_status(proofs=_proofs_with(amount=-5)), "proofs.0.amount"),
    "boolean amount": (token_status(proofs=_proofs_with(amount=True)), "proofs.0.amount"),
    "malformed Y": (token_status(proofs=[proof("02abc")]), "proofs.0.Y"),
    "off-curve Y": (token_status(proofs=[proof(OFF_CURVE_Y)]), "proofs.0.Y"),
    "no Y nor secret": (token_status(proofs=[{"amount": 1, "keyset_id": "k"}]), "proofs.0.Y"),
    "secret and Y disagree": (token_status(proofs=_proofs_with(Y=Y1)), "proofs.0"),
    "secret too long": (token_status(proofs=_proofs_with(secret=SECRET * 40)), "proofs.0"),
    "secret not a string": (token_status(proofs=_proofs_with(secret=42)), "proofs.0"),
    "empty proofs": (token_status(proofs=[]), "proofs"),
    "duplicate proofs": (token_status(proofs=[proof(), proof()]), "proofs"),
    "unknown proof field": (token_status(proofs=_proofs_with(C="02ab")), "proofs.0.<extra field>"),
    "naive datetime": (token_status(occurred_at="2025-08-08T12:00:00"), "occurred_at"),
    "bad datetime": (token_status(occurred_at="yesterday"), "occurred_at"),
    "huge epoch": (token_status(occurred_at=10**30), "occurred_at"),
    "ftp mint": (token_status(mint_url="ftp://mint.example"), "mint_url"),
}


@pytest.mark.parametrize(
    ("data", "field"), INVALID_TOKEN_STATUS.values(), ids=INVALID_TOKEN_STATUS.keys()
)
def test_invalid_token_status_is_rejected_naming_the_field(
    data: dict[str, Any], field: str
) -> None:
    with pytest.raises(ContractError) as caught:
        parse_token_status(raw(data))
    message = str(caught.value)
    assert f"{field}:" in message
    assert SECRET not in message
    assert caught.value.code == "INVALID_REQUEST"
    assert caught.value.__cause__ is None and caught.value.__suppress_context__


INVALID_MELT = {
    "missing request_id": (
        {k: v for k, v in melt_request().items() if k != "request_id"},
        "request_id",
    ),
    "zero amount": (melt_request(amount=0), "amount"),
    "zero deadline": (melt_request(deadline_ms=0), "deadline_ms"),
    "bad reply_to": (melt_request(reply_to="no spaces allowed"), "reply_to"),
    "empty token_id": (melt_request(proofs=_proofs_with(token_id="")), "proofs.0.token_id"),
    "secret in wrong place": (melt_request(secret=SECRET), "secret"),
}


@pytest.mark.parametrize(("data", "field"), INVALID_MELT.values(), ids=INVALID_MELT.keys())
def test_invalid_melt_request_is_rejected_naming_the_field(
    data: dict[str, Any], field: str
) -> None:
    with pytest.raises(ContractError) as caught:
        parse_melt_request(raw(data))
    assert f"{field}:" in str(caught.value)
    assert SECRET not in str(caught.value)


def test_a_secret_sent_as_y_is_not_echoed() -> None:
    with pytest.raises(ContractError) as caught:
        parse_token_status(raw(token_status(proofs=[proof(SECRET)])))
    assert SECRET not in str(caught.value)
    assert caught.value.error_kind is ErrorKind.VALIDATION_ERROR


def test_many_errors_are_summarised() -> None:
    data = token_status(proofs=[proof(f"bad-{i}-{SECRET}") for i in range(50)])
    with pytest.raises(ContractError) as caught:
        parse_token_status(raw(data))
    assert "and 40 more" in str(caught.value)
    assert len(caught.value.problems) == 50
    assert SECRET not in str(caught.value)


def test_broken_json_is_a_decode_error() -> None:
    with pytest.raises(ContractError) as caught:
        parse_melt_request(b'{"request_id": "req-9", "secret": "' + SECRET.encode())
    assert caught.value.error_kind is ErrorKind.DECODE_ERROR
    assert SECRET not in str(caught.value)


def test_not_an_object_is_rejected() -> None:
    with pytest.raises(ContractError):
        parse_melt_request(b"[1, 2, 3]")


def test_ten_thousand_proofs_are_rejected_quickly() -> None:
    proofs = [{"secret": f"{SECRET}-{i}", "amount": 1, "keyset_id": "k"} for i in range(10_000)]
    data = raw(melt_request(proofs=proofs))
    started = time.perf_counter()
    with pytest.raises(ContractError) as caught:
        parse_melt_request(data)
    elapsed = time.perf_counter() - started
    assert caught.value.error_kind is ErrorKind.TOO_LARGE
    assert "proofs:" in str(caught.value)
    assert "10000" in str(caught.value)
    # Hashing 10,000 secrets alone would take ~150 ms; the count check comes first.
    assert elapsed < 0.5


def test_model_validate_without_context_uses_default_limits() -> None:
    with pytest.raises(ValidationError):
        TokenStatusEvent.model_validate(token_status(proofs=[proof()] * 1001))


# --- extraction from invalid input --------------------------------------------------------------


def test_extract_from_valid_json() -> None:
    body = raw(melt_request(amount=-1))
    assert extract_request_id(body) == "req-1"
    assert extract_npub(body) == "npub1alice"
    assert extract_reply_to(body) == "wallet.replies"


def test_extract_from_broken_json() -> None:
    body = b'{"request_id": "req-7", "npub": "npub1bob", "proofs": [{"secr'
    assert extract_request_id(body) == "req-7"
    assert extract_npub(body) == "npub1bob"


@pytest.mark.parametrize(
    "body",
    [b"", b"null", b'{"request_id": 5}', b'{"request_id": ""}', b'{"request_id": "a b"}', b"\xff"],
)
def test_extract_gives_none_when_absent_or_insane(body: bytes) -> None:
    assert extract_request_id(body) is None


# --- outputs -----------------------------------------------------------------------------------


def _discrepancy_line() -> PreflightDiscrepancy:
    return PreflightDiscrepancy(
        Y=Y1,
        type=DiscrepancyType.DB_UNSPENT_MINT_SPENT,
        severity=Severity.HIGH,
        db_status=DbStatus.UNSPENT,
        mint_state=MintState.SPENT,
        action=Action.MARK_SPENT,
    )


OUTPUTS: list[BaseModel] = [
    PreflightResult(
        request_id="req-1",
        npub="npub1alice",
        mint_url=MINT,
        operation_cleared=False,
        verdict=Verdict.BLOCKED,
        code=BlockCode.HIGH_SEVERITY_DISCREPANCIES,
        discrepancies_found=1,
        discrepancies_resolved=0,
        severity_counts=SeverityCounts(HIGH=1),
        discrepancies=(_discrepancy_line(),),
        checked_proofs=2,
        duration_ms=4.5,
        answered_at=WHEN,
    ),
    DiscrepancyEvent(
        event_id="d-1",
        detected_at=WHEN,
        npub="npub1alice",
        mint_url=MINT,
        token_id=None,
        Y=Y1,
        amount=8,
        keyset_id="009a1f293253e41e",
        type=DiscrepancyType.PROOF_NOT_IN_DB,
        severity=Severity.LOW,
        db_status=None,
        mint_state=MintState.UNSPENT,
        action=Action.AUDIT,
        source=Source.SWEEP,
        request_id=None,
        lifecycle=Lifecycle.OPENED,
    ),
    CorrectionCommand(
        command_id="c-1",
        npub="npub1alice",
        token_id="tok-1",
        mint_url=MINT,
        Ys=(Y1, Y2),
        set_status=DbStatus.SPENT,
        reason="DB_PENDING_MINT_SPENT",
        discrepancy_event_ids=("d-1",),
        issued_at=WHEN,
    ),
    ProofCheckEvent(
        event_id="p-1",
        checked_at=WHEN,
        mint_url=MINT,
        source=Source.PREFLIGHT,
        proofs_checked=2,
        npub="npub1alice",
        request_id="req-1",
    ),
    Alert(
        alert_id="a-1",
        kind=AlertKind.RATE_THRESHOLD,
        severity=Severity.HIGH,
        mint_url=MINT,
        message="HIGH severity discrepancies detected",
        observed=12.0,
        threshold=5.0,
        window_start=WHEN,
        window_end=WHEN,
        raised_at=WHEN,
    ),
    DeadLetterRecord(
        source_topic="wallet.melt-requests",
        partition=3,
        offset=42,
        key="npub1alice",
        error_kind=ErrorKind.VALIDATION_ERROR,
        error="invalid MeltRequest: amount: Input should be greater than 0",
        raw='{"amount": 0}',
        received_at=WHEN,
    ),
    ValidateResponse(
        valid=False,
        has_high_severity=True,
        recommendation=Recommendation.BLOCK,
        discrepancies=(_discrepancy_line(),),
    ),
]


@pytest.mark.parametrize("model", OUTPUTS, ids=lambda m: type(m).__name__)
def test_outputs_round_trip(model: BaseModel) -> None:
    encoded = to_json_bytes(model)
    assert type(model).model_validate_json(encoded) == model
    assert parse_contract(type(model), encoded) == model
    assert to_json_dict(model) == json.loads(encoded)


def test_output_json_shape() -> None:
    out = to_json_dict(OUTPUTS[0])
    assert out["severity_counts"] == {"HIGH": 1, "MEDIUM": 0, "LOW": 0}
    assert out["discrepancies"][0]["Y"] == Y1
    assert out["answered_at"] == "2025-08-08T12:00:00.123Z"
    assert to_json_dict(OUTPUTS[2])["Ys"] == [Y1, Y2]


def test_preflight_result_must_be_consistent() -> None:
    fields = OUTPUTS[0].model_dump()
    with pytest.raises(ValidationError):
        PreflightResult.model_validate({**fields, "operation_cleared": True})
    with pytest.raises(ValidationError):
        PreflightResult.model_validate({**fields, "verdict": Verdict.CLEARED})


def test_outputs_ignore_unknown_fields_for_forward_compatibility() -> None:
    data = {**to_json_dict(OUTPUTS[1]), "added_later": 1}
    assert DiscrepancyEvent.model_validate(data) == OUTPUTS[1]


def test_severity_counts_of() -> None:
    counts = SeverityCounts.of([Severity.HIGH, Severity.LOW, Severity.LOW])
    assert (counts.high, counts.medium, counts.low) == (1, 0, 2)
    assert counts.get(Severity.LOW) == 2


def test_dead_letter_record_scrubs_and_bounds_whatever_it_is_given() -> None:
    body = json.dumps({"proofs": [{"secret": SECRET, "amount": 1}] * 500}).encode()
    record = DeadLetterRecord(
        source_topic="wallet.token-status",
        partition=0,
        offset=1,
        key=None,
        error_kind=ErrorKind.VALIDATION_ERROR,
        error=f'bad input {{"secret": "{SECRET}"}}',
        raw=body.decode(),
        received_at=WHEN,
    )
    assert SECRET not in to_json_bytes(record).decode()
    assert SCRUBBED in record.raw
    assert len(record.raw.encode()) <= 4096


def test_dead_letter_cut_respects_utf8() -> None:
    record = DeadLetterRecord(
        source_topic="t",
        partition=None,
        offset=None,
        key=None,
        error_kind=ErrorKind.DECODE_ERROR,
        error="x",
        raw="é" * 5000,
        received_at=WHEN,
    )
    assert len(record.raw.encode()) <= 4096
    assert set(record.raw) == {"é"}
