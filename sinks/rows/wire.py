"""The wire shape of each topic the sink stores, for the slow path: the contract's fields and
the domain's enumerations, without per-record Python validators."""

from __future__ import annotations

from typing import Annotated

from pydantic import (
    AwareDatetime,
    ConfigDict,
    Field,
    StringConstraints,
    with_config,
)
from typing_extensions import TypedDict

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

# --- field types (mirror streams.core.contracts without per-record Python validators) -------

Ident = Annotated[str, StringConstraints(min_length=1, max_length=256, pattern=r"^\S+$")]
MintUrl = Annotated[
    str, StringConstraints(min_length=8, max_length=2048, pattern=r"^https?://\S+$")
]
YHex = Annotated[str, StringConstraints(pattern=r"^0[23][0-9a-fA-F]{64}$")]
KeysetId = Annotated[
    str, StringConstraints(min_length=1, max_length=128, pattern=r"^[0-9A-Za-z+/=_-]+$")
]
Amount = Annotated[int, Field(strict=True, gt=0, le=2**63 - 1)]
Count = Annotated[int, Field(strict=True, ge=0, le=2**32 - 1)]
# The contract's timestamps are ISO-8601 with a zone or epoch milliseconds.
Timestamp = AwareDatetime | Annotated[int, Field(strict=True, ge=0, le=2**53)]

# Enumerations are the domain's own (streams.core.domain): one definition, here as in the contract.
DiscrepancyTypeLit = DiscrepancyType
SeverityLit = Severity
DbStatusLit = DbStatus
MintStateLit = MintState
ActionLit = Action
SourceLit = Source
LifecycleLit = Lifecycle
VerdictLit = Verdict
BlockCodeLit = BlockCode

_IGNORE_EXTRA = ConfigDict(extra="ignore")


@with_config(_IGNORE_EXTRA)
class DiscrepancyWire(TypedDict):
    event_id: Ident
    detected_at: Timestamp
    npub: Ident
    mint_url: MintUrl
    token_id: Ident | None
    Y: YHex
    amount: Amount
    keyset_id: KeysetId
    type: DiscrepancyTypeLit
    severity: SeverityLit
    db_status: DbStatusLit | None
    mint_state: MintStateLit
    action: ActionLit
    source: SourceLit
    request_id: Ident | None
    lifecycle: LifecycleLit


@with_config(_IGNORE_EXTRA)
class SeverityCountsWire(TypedDict):
    HIGH: Count
    MEDIUM: Count
    LOW: Count


@with_config(_IGNORE_EXTRA)
class PreflightDiscrepancyWire(TypedDict):
    type: DiscrepancyTypeLit


# An answer to an INVALID_REQUEST carries whatever npub and mint the request had: free text.
AnyText = Annotated[str, StringConstraints(max_length=2048)]


@with_config(_IGNORE_EXTRA)
class PreflightWire(TypedDict):
    request_id: Ident
    npub: AnyText
    mint_url: AnyText
    operation_cleared: bool
    verdict: VerdictLit
    code: BlockCodeLit | None
    discrepancies_found: Count
    discrepancies_resolved: Count
    severity_counts: SeverityCountsWire
    discrepancies: list[PreflightDiscrepancyWire]
    checked_proofs: Count
    duration_ms: Annotated[float, Field(ge=0, allow_inf_nan=False)]
    answered_at: Timestamp


@with_config(_IGNORE_EXTRA)
class CorrectionWire(TypedDict):
    command_id: Ident
    npub: Ident
    token_id: Ident
    mint_url: MintUrl
    Ys: Annotated[list[YHex], Field(min_length=1)]
    set_status: DbStatusLit
    reason: Annotated[str, StringConstraints(max_length=4096)]
    discrepancy_event_ids: list[Ident]
    issued_at: Timestamp


@with_config(_IGNORE_EXTRA)
class ProofCheckWire(TypedDict):
    event_id: Ident
    checked_at: Timestamp
    mint_url: MintUrl
    source: SourceLit
    proofs_checked: Count
    npub: Ident | None
    request_id: Ident | None
