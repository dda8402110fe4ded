"""One connection to ClickHouse, embedded (chDB) or a server, with errors mapped to ours.

`CLICKHOUSE_URL` picks the engine: `chdb:///path` opens embedded ClickHouse in this process (one
process per path, one path per process), `http(s)://user:pass@host:8123/db` a server.
clickhouse-connect is synchronous; `ClickHouseStore.run` calls it on the store's own thread, so
the event loop (the Faust worker's included) never blocks on ClickHouse and the calls of one
store never interleave.

Errors: a connection that fails, or a server error that passes with time (too many parts,
memory, timeouts), is `SinkBackpressure` (retry later); anything else is `SinkError`.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import tempfile
import threading
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from functools import lru_cache
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit, urlunsplit

import clickhouse_connect
from clickhouse_connect.datatypes.registry import get_from_name
from clickhouse_connect.driver.exceptions import ClickHouseError, DatabaseError, OperationalError

from sinks.rows import JSON_INSERT_SETTINGS, JsonSource, RowSpec, json_insert_sql
from streams.core.errors import ConfigError, SinkBackpressure, SinkError
from streams.core.settings import Settings

# While this file exists every call fails as if ClickHouse refused the connection. Tests use it
# to make embedded chDB "unavailable" for a while (a server's outage needs no hook).
UNAVAILABLE_HOOK_ENV = "PROOFRECON_TEST_SINK_UNAVAILABLE"
# Fast-path batch files live here, inside the chDB path (see ClickHouseStore._scratch_dir).
SCRATCH_DIR = "proofrecon-sink-batches"

# Server errors that pass with time: retry them instead of failing for good.
TRANSIENT_CODES = frozenset(
    {
        3,  # UNEXPECTED_END_OF_FILE (connection cut)
        159,  # TIMEOUT_EXCEEDED
        164,  # READONLY (a replica in read-only mode)
        202,  # TOO_MANY_SIMULTANEOUS_QUERIES
        209,  # SOCKET_TIMEOUT
        210,  # NETWORK_ERROR
        241,  # MEMORY_LIMIT_EXCEEDED
        242,  # TABLE_IS_READ_ONLY
        252,  # TOO_MANY_PARTS
        285,  # TOO_FEW_LIVE_REPLICAS
        319,  # UNKNOWN_STATUS_OF_INSERT
        425,  # SYSTEM_ERROR
        999,  # KEEPER_EXCEPTION
    }
)
_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
DEFAULT_RETRY_AFTER_S = 1.0

T = TypeVar("T")


class RejectedBatch(Exception):
    """ClickHouse refused a fast-path insert for its data (a record failed to parse or to meet
    the checks). Nothing of it was written: validate the records one by one instead.

    Carries the error code only: ClickHouse's message may quote the offending value.
    """

    def __init__(self, clickhouse_code: int) -> None:
        super().__init__(f"ClickHouse rejected the batch (code {clickhouse_code})")
        self.clickhouse_code = clickhouse_code


def redact_url(url: str) -> str:
    """The URL without its password, for logs and messages."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.rsplit("@", 1)[-1]
    user = parts.username or ""
    return urlunsplit(parts._replace(netloc=f"{user}:***@{netloc}"))


def is_embedded(url: str) -> bool:
    return url.startswith("chdb://")


def chdb_path(url: str) -> Path:
    return Path(url.removeprefix("chdb://"))


def check_identifier(name: str) -> str:
    if not _IDENTIFIER.fullmatch(name):
        raise ConfigError(f"{name!r} is not a plain ClickHouse identifier")
    return name


class ClickHouseStore:
    """A lazily opened clickhouse-connect client plus the thread it runs on."""

    def __init__(self, settings: Settings, *, name: str = "clickhouse") -> None:
        self.url = settings.clickhouse_url
        self.database = check_identifier(settings.clickhouse.database)
        self._username = settings.clickhouse.username
        self._password = settings.clickhouse.password
        self._client: Any = None
        self._lock = threading.Lock()
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=name)
        self._types: dict[str, Any] = {}
        self._scratch: Path | None = None  # chDB reads fast-path batches from files here

    @property
    def embedded(self) -> bool:
        return is_embedded(self.url)

    @property
    def display_url(self) -> str:
        return redact_url(self.url)

    def table(self, name: str) -> str:
        return f"{self.database}.{check_identifier(name)}"

    # --- running ------------------------------------------------------------------------------

    async def run(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run a blocking store method on the store's thread."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, lambda: fn(*args, **kwargs))

    def _connect(self) -> Any:
        if self._client is not None:
            return self._client
        try:
            self._client = self._open()
        except ClickHouseError:
            raise
        except Exception as exc:
            # chDB refuses a path another process holds (or a second path in this one): it may
            # be free later, so this is backpressure, not a permanent failure.
            raise SinkBackpressure(
                f"cannot open ClickHouse at {self.display_url}: {_short(exc)}",
                retry_after=DEFAULT_RETRY_AFTER_S,
            ) from None
        return self._client

    def _open(self) -> Any:
        if self.embedded:
            chdb_path(self.url).mkdir(parents=True, exist_ok=True)
            return clickhouse_connect.get_client(dsn=self.url)
        kwargs: dict[str, Any] = {
            "connect_timeout": 5,
            "send_receive_timeout": 60,
            # One session per client would reject a second concurrent query; we need none.
            "autogenerate_session_id": False,
        }
        if self._username is not None:
            kwargs["username"] = self._username
        if self._password is not None:
            kwargs["password"] = self._password.get_secret_value()
        return clickhouse_connect.get_client(dsn=self.url, **kwargs)

    def _call(self, fn: Callable[[Any], T]) -> T:
        hook = os.environ.get(UNAVAILABLE_HOOK_ENV)
        if hook and Path(hook).exists():
            raise SinkBackpressure(
                "ClickHouse unavailable (test hook)", retry_after=DEFAULT_RETRY_AFTER_S
            )
        with self._lock:
            try:
                return fn(self._connect())
            except OperationalError as exc:
                self._drop_client()
                raise SinkBackpressure(
                    f"ClickHouse at {self.display_url} unreachable: {_short(exc)}",
                    retry_after=DEFAULT_RETRY_AFTER_S,
                ) from None
            except DatabaseError as exc:
                if exc.code in TRANSIENT_CODES:
                    raise SinkBackpressure(
                        f"ClickHouse busy: {_short(exc)}", retry_after=DEFAULT_RETRY_AFTER_S
                    ) from None
                if exc.code is not None:
                    raise _DataError(exc.code, f"ClickHouse error: {_short(exc)}") from None
                raise SinkError(f"ClickHouse error: {_short(exc)}") from None
            except ClickHouseError as exc:
                raise SinkError(f"ClickHouse error: {_short(exc)}") from None

    def _drop_client(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            # A broken connection may fail to close; it is gone either way.
            with contextlib.suppress(Exception):
                client.close()

    def close(self) -> None:
        with self._lock:
            self._drop_client()
        self._executor.shutdown(wait=False)

    # --- operations (blocking; call through `run` from async code) ------------------------------

    def ping(self) -> bool:
        return bool(self._call(lambda c: c.command("SELECT 1")) == 1)

    def command(self, sql: str, parameters: Mapping[str, Any] | None = None) -> Any:
        return self._call(lambda c: c.command(sql, parameters=dict(parameters or {})))

    def query(self, sql: str, parameters: Mapping[str, Any] | None = None) -> list[dict[str, Any]]:
        def run(c: Any) -> list[dict[str, Any]]:
            result = c.query(sql, parameters=dict(parameters or {}), column_oriented=True)
            names = tuple(result.column_names)
            if not names:
                return []
            return list(map(row_maker(names), *result.result_columns))

        return self._call(run)

    def raw(self, sql: str, fmt: str, parameters: Mapping[str, Any] | None = None) -> bytes:
        return self._call(
            lambda c: bytes(c.raw_query(sql, parameters=dict(parameters or {}), fmt=fmt))
        )

    def insert_columns(
        self,
        table: str,
        columns: Mapping[str, Sequence[Any]],
        types: Mapping[str, str],
        *,
        token: str | None = None,
    ) -> int:
        """Insert column-oriented data; returns the rows written (0 when deduplicated)."""
        names = list(columns)
        column_types = [self._type(types[name]) for name in names]
        settings: dict[str, Any] = {}
        if not self.embedded:
            # Defaults, but a server's profile may change them: replays must be dropped in the
            # raw table and in every materialized view. chDB applies each setting with a SET
            # around the insert, so there the defaults (asserted by tests) are left alone.
            settings["insert_deduplicate"] = 1
            settings["deduplicate_blocks_in_dependent_materialized_views"] = 1
        if token is not None:
            settings["insert_deduplication_token"] = token

        def run(c: Any) -> int:
            summary = c.insert(
                self.table(table),
                [columns[name] for name in names],
                column_names=names,
                column_types=column_types,
                column_oriented=True,
                settings=settings,
            )
            return int(summary.written_rows)

        return self._call(run)

    def insert_json(
        self,
        spec: RowSpec,
        body: bytes,
        *,
        topic: str,
        partition: int,
        rows: int,
        first_offset: int | None,
        token: str | None = None,
    ) -> int:
        """The fast path: ClickHouse parses and checks `body` (one JSON object per record) and
        inserts it into `spec.table` with one INSERT ... SELECT.

        Returns the rows written as a server reports them (0 for a deduplicated replay), or the
        rows sent (chDB reports nothing). Raises `RejectedBatch` when ClickHouse refused the data
        (then nothing was written), `SinkBackpressure` when it is unreachable or busy.
        `first_offset` as for `sinks.rows.json_insert_sql`; a server needs spliced offsets (None).
        """
        settings: dict[str, int | str] = dict(JSON_INSERT_SETTINGS)
        settings["insert_deduplicate"] = 1
        settings["deduplicate_blocks_in_dependent_materialized_views"] = 1
        if token is not None:
            settings["insert_deduplication_token"] = token
        table = self.table(spec.table)

        def sql(source: JsonSource, first: int | None) -> str:
            return json_insert_sql(
                spec,
                table,
                source,
                topic=topic,
                partition=partition,
                rows=rows,
                first_offset=first,
                settings=settings,
            )

        if not self.embedded:
            if first_offset is not None:
                raise ValueError("a server reads the body with input(): splice the offsets")
            statement = sql(JsonSource(None), None)
            summary = self._call_insert(lambda c: c.command(statement, data=body))
            written = getattr(summary, "written_rows", None)  # 0 for a deduplicated replay
            return int(written) if written is not None else rows

        def run(c: Any) -> None:
            # chDB has no request body: the batch goes through a file, as clickhouse-connect's
            # own chDB inserts do (INSERT ... FROM INFILE).
            fd, name = tempfile.mkstemp(suffix=".json", dir=self._scratch_dir())
            try:
                with os.fdopen(fd, "wb") as file:
                    file.write(body)
                c.command(sql(JsonSource(name), first_offset))
            finally:
                with contextlib.suppress(OSError):
                    os.unlink(name)

        self._call_insert(run)
        return rows

    def _call_insert(self, fn: Callable[[Any], T]) -> T:
        try:
            return self._call(fn)
        except _DataError as exc:
            raise RejectedBatch(exc.clickhouse_code) from None

    def _scratch_dir(self) -> Path:
        """Beside the chDB data (same owner, same trust): a batch file holds raw values, fields
        the sink never stores included, for the length of one insert. Leftovers of a crash are
        removed at first use."""
        if self._scratch is None:
            scratch = chdb_path(self.url) / SCRATCH_DIR
            scratch.mkdir(mode=0o700, exist_ok=True)
            for stale in scratch.glob("*.json"):
                with contextlib.suppress(OSError):
                    stale.unlink()
            self._scratch = scratch
        return self._scratch

    def _type(self, name: str) -> Any:
        if name not in self._types:
            self._types[name] = get_from_name(name)
        return self._types[name]


@lru_cache(maxsize=256)
def row_maker(names: tuple[str, ...]) -> Callable[..., dict[str, Any]]:
    """`f(v0, v1, ...) -> {names[0]: v0, ...}`, compiled once per column list: a dict display is
    three times as fast as dict(zip(names, row)), which on the 17k rows of a 30-day hourly answer
    cost more than the query itself. The keys are repr()'d string literals."""
    args = ", ".join(f"v{i}" for i in range(len(names)))
    body = ", ".join(f"{name!r}: v{i}" for i, name in enumerate(names))
    maker: Callable[..., dict[str, Any]] = eval(f"lambda {args}: {{{body}}}")  # noqa: S307
    return maker


class _DataError(SinkError):
    """A ClickHouse error with a code that is not transient (`_call`'s callers see a SinkError)."""

    def __init__(self, clickhouse_code: int, message: str) -> None:
        super().__init__(message)
        self.clickhouse_code = clickhouse_code


def _short(exc: Exception, limit: int = 300) -> str:
    text = " ".join(str(exc).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."
