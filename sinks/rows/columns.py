"""The slow path's column builders: validated rows to ClickHouse columns, normalised."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from operator import itemgetter
from typing import Any

from streams.core.mint_url import normalise_or_strip

# --- per-topic specs ---------------------------------------------------------------------------

Row = dict[str, Any]
Columns = dict[str, list[Any]]


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MS = timedelta(milliseconds=1)


def epoch_ms(value: datetime | int) -> int:
    """A validated timestamp as epoch milliseconds (DateTime64(3) takes ints as they are).

    Exact integer arithmetic, truncating sub-millisecond digits as ClickHouse's parser does
    (`timestamp() * 1000` in floating point can land one millisecond short).
    """
    if isinstance(value, int):
        return value
    return (value - _EPOCH) // _MS


def _mint(url: str) -> str:
    # Events are normalised at the contract edge; older ones may not be (README, "Migration").
    return normalise_or_strip(url)


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
