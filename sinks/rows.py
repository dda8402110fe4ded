"""From Kafka record values to ClickHouse rows: pure logic, no I/O.

`streams.models` is the contract; this module is its storage projection, in two forms:

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
producer should never have sent (a proof `secret`) is never stored.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from itertools import repeat
from operator import itemgetter
from typing import Annotated, Any

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

from sinks.batching import RecordLike
from streams.domain import (
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
from streams.mint.protocol import normalise_mint_url

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

# Enumerations are the domain's own (streams.domain): one definition, here as in the contract.
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


# --- the fast path: ClickHouse parses and checks the raw values ----------------------------------
# SQL conditions mirroring the wire types above. Regular expressions are RE2 (ClickHouse's): `\S`
# is ASCII-only there, hence the looser corner for non-ASCII whitespace. Counts read as UInt64 and
# are range-checked, so an out-of-range value fails instead of wrapping.

_ISO_UTC_TS = (
    r"^(19|2[0-2])\d\d-(0[1-9]|1[0-2])-(0[1-9]|[12]\d|3[01])T([01]\d|2[0-3]):[0-5]\d:[0-5]\d"
    r"(\.\d{1,6})?(Z|[+-]([01]\d|2[0-3]):[0-5]\d)$"
)


def sql_string(text: str) -> str:
    """A ClickHouse string literal."""
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _re(column: str, pattern: str) -> str:
    return f"match({column}, {sql_string(pattern)})"


_NO_SPACE = r"^\S+$"
_HTTP_URL = r"^https?://\S+$"


def _ident(column: str) -> str:
    return f"(lengthUTF8({column}) BETWEEN 1 AND 256 AND {_re(column, _NO_SPACE)})"


def _mint_check(column: str) -> str:
    # Canonical form only: the slow path normalises a trailing slash away.
    return (
        f"(lengthUTF8({column}) BETWEEN 8 AND 2048 AND {_re(column, _HTTP_URL)} "
        f"AND NOT endsWith({column}, '/'))"
    )


def _y(column: str) -> str:
    return _re(column, r"^0[23][0-9a-f]{64}$")  # lower case only: the slow path lower-cases


def _ts(column: str) -> str:
    # ISO-8601 with a zone; epoch milliseconds and other spellings take the slow path.
    return _re(column, _ISO_UTC_TS)


def _enum(column: str, literal: Any) -> str:
    return f"{column} IN ({', '.join(sql_string(v.value) for v in literal)})"


def _nullable(check: str, column: str) -> str:
    return f"({column} IS NULL OR {check})"


def _count(column: str) -> str:
    return f"{column} <= 4294967295"


def _parse_ts(column: str) -> str:
    return f"parseDateTime64BestEffort({column}, 3, 'UTC')"


@dataclass(frozen=True)
class JsonProjection:
    """One topic's fast path: the input structure ClickHouse parses each value with, the
    expression of each stored column, and the conditions every record must meet."""

    structure: tuple[tuple[str, str], ...]  # (wire field, ClickHouse input type)
    select: dict[str, str]  # stored column -> SQL over the input fields (absent: same name)
    checks: tuple[str, ...]

    def input_structure(self, *, with_offset: bool) -> str:
        fields = [f"`{name}` {kind}" for name, kind in self.structure]
        if with_offset:
            fields.append("`_offset` UInt64")
        return ", ".join(fields)


# Format settings of every fast insert: strict JSON reading (no bool/number/object coercion into
# strings, no defaults for omitted or null fields), unknown fields ignored, and one single-threaded
# stream so a batch is one block (one deduplication id per partition, whatever the machine).
JSON_INSERT_SETTINGS: dict[str, int | str] = {
    "input_format_skip_unknown_fields": 1,
    "input_format_force_null_for_omitted_fields": 1,
    "input_format_null_as_default": 0,
    "input_format_json_read_bools_as_numbers": 0,
    "input_format_json_read_bools_as_strings": 0,
    "input_format_json_read_numbers_as_strings": 0,
    "input_format_json_read_objects_as_strings": 0,
    "input_format_json_read_arrays_as_strings": 0,
    "input_format_json_defaults_for_missing_elements_in_named_tuple": 0,
    "input_format_json_ignore_unknown_keys_in_named_tuple": 1,
    "input_format_allow_errors_num": 0,
    "input_format_allow_errors_ratio": 0,
    # Measured on 2 cores: a 10k-row batch parses faster in one thread, and the other core is
    # the Kafka consumer's.
    "input_format_parallel_parsing": 0,
    "max_threads": 1,
    "max_insert_threads": 1,
}
REJECTED_MESSAGE = "proofrecon: a record failed the sink's checks"


@dataclass(frozen=True)
class JsonSource:
    """Where a fast insert reads its body: a file chDB can open, or the request body (server)."""

    path: str | None  # chDB: the batch written to this file; None: `input()`, the HTTP body

    def clause(self, structure: str) -> str:
        if self.path is None:
            return f"input({sql_string(structure)})"
        return f"file({sql_string(self.path)}, 'JSONEachRow', {sql_string(structure)})"

    @property
    def format_clause(self) -> str:
        """input() reads the request body in the format the statement ends with."""
        return " FORMAT JSONEachRow" if self.path is None else ""


def json_insert_sql(
    spec: RowSpec,
    table: str,
    source: JsonSource,
    *,
    topic: str,
    partition: int,
    rows: int,
    first_offset: int | None,
    settings: dict[str, int | str],
) -> str:
    """The fast path's INSERT ... SELECT for one batch.

    `first_offset` set: the body holds exactly `rows` values of the contiguous offsets from it, and
    each row's offset is `first_offset + _row_number` (chDB's file()). None: every value carries
    its own `_offset` field, spliced in by `splice_offsets` (a server's input() has no row number).
    """
    projection = spec.json
    with_offset = first_offset is None
    expressions = [projection.select.get(name, f"`{name}`") for name in spec.column_names[:-3]]
    expressions += [sql_string(topic), str(int(partition))]
    checks = list(projection.checks)
    if with_offset:
        expressions.append("`_offset`")
    else:
        expressions.append(f"{int(first_offset)} + _row_number")  # type: ignore[arg-type]
        # A value holding two objects would shift every later row's offset: refuse it.
        checks.append(f"_row_number < {int(rows)}")
    condition = " AND ".join(f"({c})" for c in checks)
    clause = ", ".join(f"{k} = {_setting_literal(v)}" for k, v in settings.items())
    columns = ", ".join(f"`{name}`" for name in spec.column_names)
    # Every value in the text is a literal escaped by sql_string or an int; names come from SPECS.
    return (
        f"INSERT INTO {table} ({columns}) SETTINGS {clause} "  # noqa: S608
        f"SELECT {', '.join(expressions)} "
        f"FROM {source.clause(projection.input_structure(with_offset=with_offset))} "
        f"WHERE throwIf(NOT ({condition}), {sql_string(REJECTED_MESSAGE)}) = 0"
        f"{source.format_clause}"
    )


def _setting_literal(value: int | str) -> str:
    return str(value) if isinstance(value, int) else sql_string(value)


def splice_offsets(values: Sequence[bytes], offsets: Sequence[int]) -> bytes:
    """The values with `"_offset":N` added as each object's last field (for `input()`)."""
    return b"\n".join(
        [b'%s,"_offset":%d}' % (v[:-1], o) for v, o in zip(values, offsets, strict=True)]
    )


def fast_path_values(values: list[bytes]) -> bytes | None:
    """The values' concatenation if every one can be a fast-path row (a JSON object's bytes with
    no surrounding whitespace, valid UTF-8), else None: the batch takes the slow path.
    `values` are not empty (empty ones are the caller's)."""
    # map() over C methods: no Python step per record on the hot path.
    if not all(map(bytes.startswith, values, repeat(b"{"))):
        return None
    if not all(map(bytes.endswith, values, repeat(b"}"))):
        return None
    joined = b"".join(values)  # JSONEachRow needs no separator between objects
    if not joined.isascii():
        try:
            joined.decode()
        except UnicodeDecodeError:
            return None
    return joined


def fast_ids(spec: RowSpec, values: Sequence[bytes]) -> list[str] | None:
    """Each value's id, read from the bytes without parsing: the worker writes the id field first
    (`{"event_id":"...",`). None when a value does not start that way or the id holds an escape:
    the batch takes the slow path, which parses properly."""
    prefix = b'{"%s":"' % spec.id_field.encode()
    if not all(map(bytes.startswith, values, repeat(prefix))):
        return None
    start = len(prefix)
    try:
        ends = list(map(bytes.index, values, repeat(b'"'), repeat(start)))
    except ValueError:
        return None
    raw = list(map(bytes.__getitem__, values, map(slice, repeat(start), ends)))
    joined = b"\x00".join(raw)
    if not raw or b"\\" in joined:
        return [] if not raw else None
    try:
        ids = joined.decode().split("\x00")
    except UnicodeDecodeError:
        return None
    return ids if len(ids) == len(raw) else None  # a raw NUL inside an id: not JSON anyway


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
    return normalise_mint_url(url)


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
