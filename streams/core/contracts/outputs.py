"""Outputs: every field always emitted; unknown fields ignored when read back."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from enum import StrEnum
from typing import Annotated, Any, Self

from pydantic import (
    Field,
    StringConstraints,
    field_validator,
    model_validator,
)

from streams.core.cashu import scrub_text
from streams.core.contracts.fields import (
    DEAD_LETTER_RAW_MAX_BYTES,
    Amount,
    Count,
    Identifier,
    KeysetId,
    MintUrl,
    Npub,
    Output,
    UtcDatetime,
    YHex,
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
    Truth,
    Verdict,
)


class Recommendation(StrEnum):
    """The answer of the lightweight validation (the seed's validateProofStatesForOperation)."""

    PROCEED = "PROCEED"  # consistent, or only discrepancies that are logged
    RECONCILE_FIRST = "RECONCILE_FIRST"  # discrepancies that reconciliation corrects; then proceed
    BLOCK = "BLOCK"  # a blocking discrepancy: do not melt


# --- outputs -----------------------------------------------------------------------------------


class SeverityCounts(Output):
    high: Count = Field(0, alias="HIGH")
    medium: Count = Field(0, alias="MEDIUM")
    low: Count = Field(0, alias="LOW")

    @classmethod
    def of(cls, severities: Iterable[Severity]) -> Self:
        listed = list(severities)
        return cls(
            HIGH=listed.count(Severity.HIGH),
            MEDIUM=listed.count(Severity.MEDIUM),
            LOW=listed.count(Severity.LOW),
        )

    def get(self, severity: Severity) -> int:
        return {Severity.HIGH: self.high, Severity.MEDIUM: self.medium, Severity.LOW: self.low}[
            severity
        ]


class PreflightDiscrepancy(Output):
    """One line of a preflight answer's `discrepancies`."""

    y: YHex = Field(alias="Y")
    type: DiscrepancyType
    severity: Severity
    db_status: DbStatus | None
    mint_state: MintState
    action: Action


# An answer echoes its request; an INVALID_REQUEST answer may echo a missing or broken value.
EchoedText = Annotated[str, StringConstraints(max_length=2048)]


Digest = Annotated[str, StringConstraints(pattern=r"^([0-9a-f]{64})?$")]


def proofs_digest(ys: Iterable[str]) -> str:
    """SHA-256 (lowercase hex) of the request's Ys, lowercased, sorted, joined by newlines.

    Echoed in the answer, so a wallet accepts only an answer about the proofs it asked about
    (review finding 14): a request_id alone can be guessed or replayed."""
    joined = "\n".join(sorted(y.lower() for y in ys))
    return hashlib.sha256(joined.encode("ascii")).hexdigest()


class PreflightResult(Output):
    """`recon.preflight-results`, keyed by request_id."""

    request_id: Identifier
    npub: EchoedText = Field(description="The request's npub; empty if an invalid one had none.")
    mint_url: EchoedText = Field(
        description="The request's mint_url; empty if an invalid one had none."
    )
    operation_cleared: bool
    verdict: Verdict
    code: BlockCode | None
    discrepancies_found: Count
    discrepancies_resolved: Count
    severity_counts: SeverityCounts
    discrepancies: tuple[PreflightDiscrepancy, ...]
    checked_proofs: Count
    duration_ms: float = Field(ge=0)
    answered_at: UtcDatetime
    truth: Truth | None = Field(
        None,
        description="Where the mint states behind the verdict came from: checkstate (asked "
        "now), live (the NUT-17 watch's fresh state), or both; null when no mint state was used "
        "(a refusal: invalid request, mint unavailable, mismatch, deadline).",
    )
    proofs_digest: Digest = Field(
        "",
        description="SHA-256 (lowercase hex) of the request's Ys (lowercase hex), sorted, joined "
        'by "\\n". A wallet accepts an answer only if npub, mint_url and this match what it '
        "asked. Empty when the request was too broken to read its proofs.",
    )

    @model_validator(mode="after")
    def _verdict_consistent(self) -> Self:
        blocked = self.verdict is Verdict.BLOCKED
        if self.operation_cleared == blocked or (self.code is not None) != blocked:
            raise ValueError("verdict, code and operation_cleared disagree")
        return self


class DiscrepancyEvent(Output):
    """`recon.discrepancies`: one classified discrepancy; `event_id` is deterministic."""

    event_id: Identifier
    detected_at: UtcDatetime
    npub: Npub
    mint_url: MintUrl
    token_id: Identifier | None
    y: YHex = Field(alias="Y")
    amount: Amount
    keyset_id: KeysetId
    type: DiscrepancyType
    severity: Severity
    db_status: DbStatus | None
    mint_state: MintState
    action: Action
    source: Source
    request_id: Identifier | None
    lifecycle: Lifecycle = Lifecycle.OPENED


class CorrectionCommand(Output):
    """`wallet.corrections`: idempotent (set, not toggle), with a deterministic `command_id`."""

    command_id: Identifier
    npub: Npub
    token_id: Identifier
    mint_url: MintUrl
    ys: tuple[YHex, ...] = Field(alias="Ys", min_length=1)
    set_status: DbStatus
    reason: str
    discrepancy_event_ids: tuple[Identifier, ...]
    issued_at: UtcDatetime


class ProofCheckEvent(Output):
    """`recon.proof-checks`: how many proofs were checked (the denominator of severity rates)."""

    event_id: Identifier
    checked_at: UtcDatetime
    mint_url: MintUrl
    source: Source
    proofs_checked: Count
    npub: Npub | None = None
    request_id: Identifier | None = None


class Alert(Output):
    """`recon.alerts`."""

    alert_id: Identifier
    kind: AlertKind
    severity: Severity
    mint_url: MintUrl
    npub: Npub | None = None
    message: str
    observed: float
    threshold: float | None = None
    window_start: UtcDatetime | None = None
    window_end: UtcDatetime | None = None
    raised_at: UtcDatetime


class DeadLetterRecord(Output):
    """`recon.dead-letter`. Text fields are scrubbed on construction, whoever builds one."""

    source_topic: str
    partition: int | None
    offset: int | None
    key: str | None
    error_kind: ErrorKind
    error: str
    raw: str = Field(description="The input, scrubbed of secrets, at most 4 KiB of UTF-8.")
    received_at: UtcDatetime

    @field_validator("key", "error", "raw", mode="before")
    @classmethod
    def _scrubbed(cls, value: Any) -> Any:
        if isinstance(value, str | bytes):
            return _utf8_cut(scrub_text(value, max_chars=DEAD_LETTER_RAW_MAX_BYTES))
        return value


def _utf8_cut(text: str) -> str:
    encoded = text.encode("utf-8")[:DEAD_LETTER_RAW_MAX_BYTES]
    return encoded.decode("utf-8", errors="ignore")  # drops a character cut in half


class ValidateResponse(Output):
    valid: bool
    has_high_severity: bool
    recommendation: Recommendation
    discrepancies: tuple[PreflightDiscrepancy, ...]
