"""Batch decoding for the slow path: bad records reported (offset and reason, never the value)
and dropped."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass

from pydantic import (
    ValidationError,
)

from sinks.batching import RecordLike
from sinks.rows.columns import Columns, Row
from sinks.rows.specs import RowSpec

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


def decode_batch(spec: RowSpec, records: Sequence[RecordLike]) -> Decoded:
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


def _decode_one_by_one(
    spec: RowSpec, records: Sequence[RecordLike], bad: list[BadRecord]
) -> Decoded:
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
