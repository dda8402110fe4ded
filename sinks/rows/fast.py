"""The fast path over a topic's spec: the INSERT ... SELECT that has ClickHouse parse and check a
batch, and the event ids read straight from the raw values for the duplicate check."""

from __future__ import annotations

from collections.abc import Sequence
from itertools import repeat

from sinks.rows.specs import RowSpec
from sinks.rows.sql import REJECTED_MESSAGE, JsonSource, sql_string


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
