"""From Kafka record values to ClickHouse columns: pure logic, no I/O.

`streams.models` is the contract; this module is its storage projection, built for throughput:
a whole batch is validated in ONE call into pydantic-core (a JSON array of the raw values), about
10x faster than a model per record, which the ≥ 100k rows/s target needs. The projection checks
every stored field's type, enum and shape, so a bad record is skipped instead of failing its
batch's insert. It does not repeat checks that need Python per record (Y on the curve, mint URL
normalisation): the worker validated those before emitting, and they cannot break an insert.
`tests/test_sink_rows.py` pins the projection to the contract models.

Only the fields listed here reach ClickHouse; unknown fields are ignored, so a field a producer
should never have sent (a proof `secret`) is never stored.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from operator import itemgetter
from typing import Annotated, Any, Literal

from pydantic import (
    AwareDatetime,
    ConfigDict,
    Field,
    StringConstraints,
    TypeAdapter,
    ValidationError,
    with_config,
)
from typing_extensions import TypedDict

from sinks.batching import Record

# --- field types (mirror streams.models without per-record Python validators) ------------------

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

DiscrepancyTypeLit = Literal[
    "DB_UNSPENT_MINT_SPENT",
    "DB_SPENT_MINT_UNSPENT",
    "DB_PENDING_MINT_SPENT",
    "PROOF_NOT_IN_DB",
    "DB_UNSPENT_MINT_PENDING",
    "DB_PENDING_MINT_UNSPENT",
    "DB_SPENT_MINT_PENDING",
]
SeverityLit = Literal["HIGH", "MEDIUM", "LOW"]
DbStatusLit = Literal["unspent", "pending", "spent"]
MintStateLit = Literal["UNSPENT", "PENDING", "SPENT"]
ActionLit = Literal["MARK_SPENT", "INVESTIGATE", "AUDIT", "MONITOR"]
SourceLit = Literal["preflight", "sweep", "subscription", "validate"]
LifecycleLit = Literal["OPENED", "RESOLVED"]
VerdictLit = Literal["CLEARED", "CLEARED_AFTER_RECONCILIATION", "BLOCKED"]
BlockCodeLit = Literal[
    "HIGH_SEVERITY_DISCREPANCIES", "MINT_UNAVAILABLE", "INVALID_REQUEST", "DEADLINE_EXCEEDED"
]

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


# --- per-topic specs ---------------------------------------------------------------------------

Row = dict[str, Any]
Columns = dict[str, list[Any]]


def epoch_ms(value: datetime | int) -> int:
    """A validated timestamp as epoch milliseconds (DateTime64(3) takes ints as they are)."""
    if isinstance(value, int):
        return value
    return int(value.timestamp() * 1000)


def _mint(url: str) -> str:
    return url.rstrip("/")


def _col(rows: Sequence[Row], name: str) -> list[Any]:
    return list(map(itemgetter(name), rows))  # C-level, unlike a comprehension


def _discrepancy_columns(rows: Sequence[Row]) -> Columns:
    return {
        "event_id": _col(rows, "event_id"),
        "detected_at": [epoch_ms(r["detected_at"]) for r in rows],
        "npub": _col(rows, "npub"),
        "mint_url": [_mint(r["mint_url"]) for r in rows],
        "token_id": _col(rows, "token_id"),
        "Y": [r["Y"].lower() for r in rows],
        "amount": _col(rows, "amount"),
        "keyset_id": _col(rows, "keyset_id"),
        "type": _col(rows, "type"),
        "severity": _col(rows, "severity"),
        "db_status": _col(rows, "db_status"),
        "mint_state": _col(rows, "mint_state"),
        "action": _col(rows, "action"),
        "source": _col(rows, "source"),
        "request_id": _col(rows, "request_id"),
        "lifecycle": _col(rows, "lifecycle"),
    }


def _preflight_columns(rows: Sequence[Row]) -> Columns:
    return {
        "request_id": _col(rows, "request_id"),
        "answered_at": [epoch_ms(r["answered_at"]) for r in rows],
        "npub": _col(rows, "npub"),
        "mint_url": [_mint(r["mint_url"]) for r in rows],
        "operation_cleared": _col(rows, "operation_cleared"),
        "verdict": _col(rows, "verdict"),
        "code": _col(rows, "code"),
        "discrepancies_found": _col(rows, "discrepancies_found"),
        "discrepancies_resolved": _col(rows, "discrepancies_resolved"),
        "high": [r["severity_counts"]["HIGH"] for r in rows],
        "medium": [r["severity_counts"]["MEDIUM"] for r in rows],
        "low": [r["severity_counts"]["LOW"] for r in rows],
        "discrepancy_types": [[d["type"] for d in r["discrepancies"]] for r in rows],
        "checked_proofs": _col(rows, "checked_proofs"),
        "duration_ms": [float(r["duration_ms"]) for r in rows],
    }


def _correction_columns(rows: Sequence[Row]) -> Columns:
    return {
        "command_id": _col(rows, "command_id"),
        "issued_at": [epoch_ms(r["issued_at"]) for r in rows],
        "npub": _col(rows, "npub"),
        "token_id": _col(rows, "token_id"),
        "mint_url": [_mint(r["mint_url"]) for r in rows],
        "Ys": [[y.lower() for y in r["Ys"]] for r in rows],
        "proofs": [len(r["Ys"]) for r in rows],
        "set_status": _col(rows, "set_status"),
        "reason": _col(rows, "reason"),
        "discrepancy_event_ids": [list(r["discrepancy_event_ids"]) for r in rows],
    }


def _proof_check_columns(rows: Sequence[Row]) -> Columns:
    return {
        "event_id": _col(rows, "event_id"),
        "checked_at": [epoch_ms(r["checked_at"]) for r in rows],
        "mint_url": [_mint(r["mint_url"]) for r in rows],
        "source": _col(rows, "source"),
        "proofs_checked": _col(rows, "proofs_checked"),
        "npub": _col(rows, "npub"),
        "request_id": _col(rows, "request_id"),
    }


# Insert types: LowCardinality columns are sent as plain String and converted by the server;
# clickhouse-connect builds LowCardinality dictionaries in Python, which halves insert speed.
_S, _NS, _TS = "String", "Nullable(String)", "DateTime64(3, 'UTC')"
AUDIT_TYPES = {"_topic": _S, "_partition": "UInt32", "_offset": "UInt64"}


@dataclass(frozen=True)
class RowSpec:
    """How one topic's records become one table's rows."""

    kind: str  # the settings.topics field name
    table: str
    id_field: str  # the deterministic id: upstream re-emissions share it
    adapter: TypeAdapter[list[Any]]
    single: TypeAdapter[Any]
    to_columns: Callable[[Sequence[Row]], Columns]
    insert_types: dict[str, str]

    @property
    def column_names(self) -> list[str]:
        return list(self.insert_types)


def _spec(
    kind: str,
    table: str,
    id_field: str,
    wire: type[Any],
    to_columns: Callable[[Sequence[Row]], Columns],
    types: dict[str, str],
) -> RowSpec:
    return RowSpec(
        kind,
        table,
        id_field,
        TypeAdapter(list[wire]),  # type: ignore[valid-type]
        TypeAdapter(wire),
        to_columns,
        {**types, **AUDIT_TYPES},
    )


SPECS: dict[str, RowSpec] = {
    spec.kind: spec
    for spec in (
        _spec(
            "discrepancies",
            "discrepancies",
            "event_id",
            DiscrepancyWire,
            _discrepancy_columns,
            {
                "event_id": _S,
                "detected_at": _TS,
                "npub": _S,
                "mint_url": _S,
                "token_id": _NS,
                "Y": _S,
                "amount": "UInt64",
                "keyset_id": _S,
                "type": _S,
                "severity": _S,
                "db_status": _NS,
                "mint_state": _S,
                "action": _S,
                "source": _S,
                "request_id": _NS,
                "lifecycle": _S,
            },
        ),
        _spec(
            "preflight_results",
            "preflight_results",
            "request_id",
            PreflightWire,
            _preflight_columns,
            {
                "request_id": _S,
                "answered_at": _TS,
                "npub": _S,
                "mint_url": _S,
                "operation_cleared": "Bool",
                "verdict": _S,
                "code": _NS,
                "discrepancies_found": "UInt32",
                "discrepancies_resolved": "UInt32",
                "high": "UInt32",
                "medium": "UInt32",
                "low": "UInt32",
                "discrepancy_types": "Array(String)",
                "checked_proofs": "UInt32",
                "duration_ms": "Float64",
            },
        ),
        _spec(
            "corrections",
            "reconciliation_actions",
            "command_id",
            CorrectionWire,
            _correction_columns,
            {
                "command_id": _S,
                "issued_at": _TS,
                "npub": _S,
                "token_id": _S,
                "mint_url": _S,
                "Ys": "Array(String)",
                "proofs": "UInt32",
                "set_status": _S,
                "reason": _S,
                "discrepancy_event_ids": "Array(String)",
            },
        ),
        _spec(
            "proof_checks",
            "proof_checks",
            "event_id",
            ProofCheckWire,
            _proof_check_columns,
            {
                "event_id": _S,
                "checked_at": _TS,
                "mint_url": _S,
                "source": _S,
                "proofs_checked": "UInt32",
                "npub": _NS,
                "request_id": _NS,
            },
        ),
    )
}


# --- batch decoding ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class BadRecord:
    offset: int
    reason: str  # DECODE_ERROR | VALIDATION_ERROR | EMPTY; never the value itself


@dataclass(slots=True)
class Decoded:
    rows: list[Row]
    offsets: list[int]  # offsets[i] is rows[i]'s Kafka offset
    bad: list[BadRecord]


def decode_batch(spec: RowSpec, records: Sequence[Record]) -> Decoded:
    """Validate a batch's values; bad records are reported, not raised."""
    present = [r for r in records if r.value]
    bad = [BadRecord(r.offset, "EMPTY") for r in records if not r.value]
    if not present:
        return Decoded([], [], bad)
    body = b"[" + b",".join(r.value or b"" for r in present) + b"]"
    try:
        rows = spec.adapter.validate_json(body)
        return Decoded(rows, [r.offset for r in present], bad)
    except ValidationError as exc:
        failing = _failing_indexes(exc)
    if failing is None:  # the array itself did not parse: some value is not JSON
        return _decode_one_by_one(spec, present, bad)
    good = [r for i, r in enumerate(present) if i not in failing]
    bad += [BadRecord(present[i].offset, "VALIDATION_ERROR") for i in sorted(failing)]
    try:
        rows = spec.adapter.validate_json(b"[" + b",".join(r.value or b"" for r in good) + b"]")
    except ValidationError:
        return _decode_one_by_one(spec, good, bad)
    return Decoded(rows, [r.offset for r in good], sorted(bad, key=lambda b: b.offset))


def _failing_indexes(exc: ValidationError) -> set[int] | None:
    failing: set[int] = set()
    for error in exc.errors(include_url=False, include_input=False, include_context=False):
        loc = error["loc"]
        if not loc or not isinstance(loc[0], int):
            return None
        failing.add(loc[0])
    return failing


def _decode_one_by_one(spec: RowSpec, records: Sequence[Record], bad: list[BadRecord]) -> Decoded:
    rows: list[Row] = []
    offsets: list[int] = []
    for rec in records:
        try:
            rows.append(spec.single.validate_json(rec.value or b""))
            offsets.append(rec.offset)
        except ValidationError as exc:
            kind = "VALIDATION_ERROR"
            if any(e["type"] in ("json_invalid", "json_type") for e in exc.errors()):
                kind = "DECODE_ERROR"
            bad.append(BadRecord(rec.offset, kind))
    return Decoded(rows, offsets, sorted(bad, key=lambda b: b.offset))


def to_columns(
    spec: RowSpec, rows: Sequence[Row], offsets: Sequence[int], topic: str, partition: int
) -> Columns:
    """The insert's columns, in `spec.column_names` order, with each row's Kafka coordinates."""
    columns = spec.to_columns(rows)
    columns["_topic"] = [topic] * len(rows)
    columns["_partition"] = [partition] * len(rows)
    columns["_offset"] = list(offsets)
    return {name: columns[name] for name in spec.column_names}


def row_ids(spec: RowSpec, rows: Sequence[Row]) -> list[str]:
    return [str(r[spec.id_field]) for r in rows]


def describe_row(spec: RowSpec, row: Row) -> str:
    """A log-safe one-liner for a row (ids only)."""
    return json.dumps({"table": spec.table, spec.id_field: row.get(spec.id_field)})
