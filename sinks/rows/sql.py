"""The fast path: ClickHouse parses a batch's raw values (JSONEachRow) and checks every record
with SQL conditions that mirror the contract."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from itertools import repeat
from typing import Any

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
