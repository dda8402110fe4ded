"""From Kafka record values to ClickHouse rows: pure logic, no I/O.

`streams.core.contracts` is the contract; this module is its storage projection, in two forms:

- The fast path (`JsonProjection`, `json_insert_sql`): ClickHouse itself parses a batch's raw values
  (JSONEachRow, in C++) and checks every record with SQL conditions that mirror the contract; one
  record failing them fails the whole insert, and nothing is written. Python only joins the bytes.
  The fast path takes values in the canonical form the worker emits (ISO-8601 timestamps with a
  zone, lower-case Ys, mint URLs without a trailing slash); anything else fails it.
- The slow path (`decode_batch`, `to_columns`): pydantic-core validates the values, records that
  fail are reported (offset and reason, never the value) and dropped, and the good rows are
  normalised and inserted column-wise. It runs when the fast path rejected a batch, so a bad record
  costs its batch the slow path and never stops the sink.

Both paths store the same values for a valid record (tests/test_sink_fastpath.py proves it on
chDB). Stricter fast-path checks only cost speed: what the slow path accepts is stored either way.
The fast path is looser than the slow path in a few corners, where it stores a record the slow
path would have skipped: a missing nullable key reads as null, a quoted number as the number, and
RE2's not-a-space class lets non-ASCII whitespace through in identifiers.
`tests/test_sink_units.py` pins the slow path to the contract models.

Only the fields listed here reach ClickHouse; unknown fields are ignored by both paths, so a field a
producer should never have sent (a proof `secret`) is never stored."""

from sinks.rows.columns import (
    Columns,
    Row,
    epoch_ms,
)
from sinks.rows.decode import (
    BadRecord,
    Decoded,
    decode_batch,
    describe_row,
    row_ids,
    to_columns,
)
from sinks.rows.fast import (
    fast_ids,
    json_insert_sql,
)
from sinks.rows.specs import (
    AUDIT_TYPES,
    SPECS,
    RowSpec,
)
from sinks.rows.sql import (
    JSON_INSERT_SETTINGS,
    REJECTED_MESSAGE,
    JsonProjection,
    JsonSource,
    fast_path_values,
    splice_offsets,
    sql_string,
)
from sinks.rows.wire import (
    ActionLit,
    Amount,
    AnyText,
    BlockCodeLit,
    CorrectionWire,
    Count,
    DbStatusLit,
    DiscrepancyTypeLit,
    DiscrepancyWire,
    Ident,
    KeysetId,
    LifecycleLit,
    MintStateLit,
    MintUrl,
    PreflightDiscrepancyWire,
    PreflightWire,
    ProofCheckWire,
    SeverityCountsWire,
    SeverityLit,
    SourceLit,
    Timestamp,
    VerdictLit,
    YHex,
)

__all__ = [
    "AUDIT_TYPES",
    "JSON_INSERT_SETTINGS",
    "REJECTED_MESSAGE",
    "SPECS",
    "ActionLit",
    "Amount",
    "AnyText",
    "BadRecord",
    "BlockCodeLit",
    "Columns",
    "CorrectionWire",
    "Count",
    "DbStatusLit",
    "Decoded",
    "DiscrepancyTypeLit",
    "DiscrepancyWire",
    "Ident",
    "JsonProjection",
    "JsonSource",
    "KeysetId",
    "LifecycleLit",
    "MintStateLit",
    "MintUrl",
    "PreflightDiscrepancyWire",
    "PreflightWire",
    "ProofCheckWire",
    "Row",
    "RowSpec",
    "SeverityCountsWire",
    "SeverityLit",
    "SourceLit",
    "Timestamp",
    "VerdictLit",
    "YHex",
    "decode_batch",
    "describe_row",
    "epoch_ms",
    "fast_ids",
    "fast_path_values",
    "json_insert_sql",
    "row_ids",
    "splice_offsets",
    "sql_string",
    "to_columns",
]
