"""One spec per topic: its table, its id, its wire shape, its columns and their insert types, and
its fast-path projection and checks."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import (
    TypeAdapter,
)

from sinks.rows.columns import (
    Columns,
    Row,
    _correction_columns,
    _discrepancy_columns,
    _preflight_columns,
    _proof_check_columns,
)
from sinks.rows.sql import (
    JsonProjection,
    _count,
    _enum,
    _ident,
    _mint_check,
    _nullable,
    _parse_ts,
    _re,
    _ts,
    _y,
)
from sinks.rows.wire import (
    ActionLit,
    BlockCodeLit,
    CorrectionWire,
    DbStatusLit,
    DiscrepancyTypeLit,
    DiscrepancyWire,
    LifecycleLit,
    MintStateLit,
    PreflightWire,
    ProofCheckWire,
    SeverityLit,
    SourceLit,
    VerdictLit,
)

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
    json: JsonProjection

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
    json: JsonProjection,
) -> RowSpec:
    return RowSpec(
        kind,
        table,
        id_field,
        TypeAdapter(list[wire]),  # type: ignore[valid-type]
        TypeAdapter(wire),
        to_columns,
        {**types, **AUDIT_TYPES},
        json,
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
            JsonProjection(
                (
                    ("event_id", "String"),
                    ("detected_at", "String"),
                    ("npub", "String"),
                    ("mint_url", "String"),
                    ("token_id", "Nullable(String)"),
                    ("Y", "String"),
                    ("amount", "UInt64"),
                    ("keyset_id", "String"),
                    ("type", "String"),
                    ("severity", "String"),
                    ("db_status", "Nullable(String)"),
                    ("mint_state", "String"),
                    ("action", "String"),
                    ("source", "String"),
                    ("request_id", "Nullable(String)"),
                    ("lifecycle", "String"),
                ),
                {"detected_at": _parse_ts("detected_at")},
                (
                    _ident("event_id"),
                    _ts("detected_at"),
                    _ident("npub"),
                    _mint_check("mint_url"),
                    _nullable(_ident("token_id"), "token_id"),
                    _y("Y"),
                    "amount BETWEEN 1 AND 9223372036854775807",
                    _re("keyset_id", r"^[0-9A-Za-z+/=_-]{1,128}$"),
                    _enum("type", DiscrepancyTypeLit),
                    _enum("severity", SeverityLit),
                    _nullable(_enum("db_status", DbStatusLit), "db_status"),
                    _enum("mint_state", MintStateLit),
                    _enum("action", ActionLit),
                    _enum("source", SourceLit),
                    _nullable(_ident("request_id"), "request_id"),
                    _enum("lifecycle", LifecycleLit),
                ),
            ),
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
            JsonProjection(
                (
                    ("request_id", "String"),
                    ("npub", "String"),
                    ("mint_url", "String"),
                    ("operation_cleared", "Bool"),
                    ("verdict", "String"),
                    ("code", "Nullable(String)"),
                    ("discrepancies_found", "UInt64"),
                    ("discrepancies_resolved", "UInt64"),
                    ("severity_counts", "Tuple(HIGH UInt64, MEDIUM UInt64, LOW UInt64)"),
                    ("discrepancies", "Array(Tuple(type String))"),
                    ("checked_proofs", "UInt64"),
                    ("duration_ms", "Float64"),
                    ("answered_at", "String"),
                ),
                {
                    "answered_at": _parse_ts("answered_at"),
                    "high": "severity_counts.HIGH",
                    "medium": "severity_counts.MEDIUM",
                    "low": "severity_counts.LOW",
                    "discrepancy_types": "arrayMap(d -> d.type, discrepancies)",
                },
                (
                    _ident("request_id"),
                    "lengthUTF8(npub) <= 2048",
                    "lengthUTF8(mint_url) <= 2048 AND NOT endsWith(mint_url, '/')",
                    _enum("verdict", VerdictLit),
                    _nullable(_enum("code", BlockCodeLit), "code"),
                    _count("discrepancies_found"),
                    _count("discrepancies_resolved"),
                    _count("severity_counts.HIGH"),
                    _count("severity_counts.MEDIUM"),
                    _count("severity_counts.LOW"),
                    f"arrayAll(t -> {_enum('t', DiscrepancyTypeLit)}, discrepancies.type)",
                    _count("checked_proofs"),
                    "isFinite(duration_ms) AND duration_ms >= 0",
                    _ts("answered_at"),
                ),
            ),
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
            JsonProjection(
                (
                    ("command_id", "String"),
                    ("npub", "String"),
                    ("token_id", "String"),
                    ("mint_url", "String"),
                    ("Ys", "Array(String)"),
                    ("set_status", "String"),
                    ("reason", "String"),
                    ("discrepancy_event_ids", "Array(String)"),
                    ("issued_at", "String"),
                ),
                {"issued_at": _parse_ts("issued_at"), "proofs": "length(Ys)"},
                (
                    _ident("command_id"),
                    _ident("npub"),
                    _ident("token_id"),
                    _mint_check("mint_url"),
                    f"notEmpty(Ys) AND arrayAll(y -> {_y('y')}, Ys)",
                    _enum("set_status", DbStatusLit),
                    "lengthUTF8(reason) <= 4096",
                    f"arrayAll(e -> {_ident('e')}, discrepancy_event_ids)",
                    _ts("issued_at"),
                ),
            ),
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
            JsonProjection(
                (
                    ("event_id", "String"),
                    ("checked_at", "String"),
                    ("mint_url", "String"),
                    ("source", "String"),
                    ("proofs_checked", "UInt64"),
                    ("npub", "Nullable(String)"),
                    ("request_id", "Nullable(String)"),
                ),
                {"checked_at": _parse_ts("checked_at")},
                (
                    _ident("event_id"),
                    _ts("checked_at"),
                    _mint_check("mint_url"),
                    _enum("source", SourceLit),
                    _count("proofs_checked"),
                    _nullable(_ident("npub"), "npub"),
                    _nullable(_ident("request_id"), "request_id"),
                ),
            ),
        ),
    )
}
