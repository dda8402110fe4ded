"""Analyst queries: hourly severity rates, blocked melts, top discrepancy types, preflight latency.

Two providers answer them with the same JSON documents:
- `ClickHouseAnalytics` runs the SQL (embedded chDB in the process that owns the path, or a server);
- `HttpAnalytics` asks the process that owns an embedded chDB path, over its web API.
`open_provider` picks one: a server is queried directly; an embedded path is queried through the
worker (or `proofrecon sink`) when one serves the web port, else opened directly.

SQL is built from validated identifiers (the database name) and fixed text; every value an
analyst gives is a bound parameter (`{name:Type}`), never pasted into the SQL.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any, Protocol

import httpx

from sinks.analytics.report import render_report
from sinks.clickhouse import ClickHouseStore, is_embedded
from sinks.migrate import migrate
from streams.core.domain import BlockCode, Severity
from streams.core.errors import ConfigError, ContractError, SinkError
from streams.core.settings import Settings

ANALYTICS_PREFIX = "/v1/analytics"
DEFAULT_SINCE = "24h"
DEFAULT_REPORT_SINCE = "7d"
_SINCE = re.compile(r"^(\d{1,5})([mhdw])$")
_UNITS = {"m": "minutes", "h": "hours", "d": "days", "w": "weeks"}
MAX_TOP = 100
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)  # exports without `since` take everything

# Snapshot queries per exported object. Hourly tables are summed: SummingMergeTree rows of one
# key may not be merged yet, and an analyst opening the file must not have to know that.
EXPORTS: dict[str, str] = {
    "discrepancies": "SELECT * FROM {db}.discrepancies WHERE detected_at >= {since:DateTime64(3)}",
    "discrepancy_hourly": (
        "SELECT hour, mint_url, severity, type, sum(discrepancies) AS discrepancies, "
        "sum(resolved) AS resolved, sum(amount) AS amount FROM {db}.discrepancy_hourly "
        "WHERE hour >= {since:DateTime} GROUP BY hour, mint_url, severity, type "
        "ORDER BY hour, mint_url, severity, type"
    ),
    "proof_checks_hourly": (
        "SELECT hour, mint_url, source, sum(proofs_checked) AS proofs_checked, "
        "sum(checks) AS checks FROM {db}.proof_checks_hourly WHERE hour >= {since:DateTime} "
        "GROUP BY hour, mint_url, source ORDER BY hour, mint_url, source"
    ),
    "severity_rates_hourly": (
        "SELECT * FROM {db}.severity_rates_hourly WHERE hour >= {since:DateTime} "
        "ORDER BY hour, mint_url, severity"
    ),
    "preflight_results": (
        "SELECT * FROM {db}.preflight_results WHERE answered_at >= {since:DateTime64(3)}"
    ),
    "reconciliation_actions": (
        "SELECT * FROM {db}.reconciliation_actions WHERE issued_at >= {since:DateTime64(3)}"
    ),
}


class AnalyticsQueryError(ContractError):
    """A query parameter an analyst got wrong (HTTP 400, CLI exit 2)."""


# --- parameters --------------------------------------------------------------------------------


def resolve_since(text: str | None, now: datetime, default: str = DEFAULT_SINCE) -> datetime:
    """`24h`, `90m`, `7d`, `2w` back from `now`, or an ISO date/time; floored to the hour."""
    text = (text or default).strip()
    match = _SINCE.fullmatch(text)
    if match:
        start = now - timedelta(**{_UNITS[match.group(2)]: int(match.group(1))})
    else:
        try:
            start = datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError:
            raise AnalyticsQueryError(
                "since must look like 24h, 90m, 7d, 2w or an ISO-8601 date/time"
            ) from None
        if start.tzinfo is None:
            start = start.replace(tzinfo=UTC)
    return start.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


def check_mint(mint: str | None) -> str | None:
    if mint is None or not mint.strip():
        return None
    mint = mint.strip().rstrip("/")
    if len(mint) > 2048 or not re.fullmatch(r"https?://\S+", mint):
        raise AnalyticsQueryError("mint must be an http(s) URL")
    return mint


def check_severity(severity: str | None) -> str | None:
    if severity is None or not severity.strip():
        return None
    try:
        return Severity(severity.strip().upper()).value
    except ValueError:
        raise AnalyticsQueryError("severity must be HIGH, MEDIUM or LOW") from None


def check_limit(limit: int | str | None, default: int = 10) -> int:
    try:
        value = default if limit in (None, "") else int(limit)
    except ValueError:
        raise AnalyticsQueryError("limit must be an integer") from None
    if not 1 <= value <= MAX_TOP:
        raise AnalyticsQueryError(f"limit must be between 1 and {MAX_TOP}")
    return value


def check_table(table: str) -> str:
    if table not in EXPORTS:
        raise AnalyticsQueryError(f"unknown table; one of {', '.join(EXPORTS)}")
    return table


# --- SQL (pure) --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Query:
    sql: str
    params: dict[str, Any]


def _filters(clauses: list[str], params: dict[str, Any], **values: str | None) -> str:
    for column, value in values.items():
        if value is not None:
            clauses.append(f"{column} = {{{column}:String}}")
            params[column] = value
    return " AND ".join(clauses)


# The view reads with FINAL (migration 003), which is slower read in key order than read and
# then sorted: ~14 ms against ~6 ms over 30 days of 10M discrepancies here.
_HOURLY_SETTINGS = "optimize_read_in_order = 0"


def hourly_query(db: str, since: datetime, mint: str | None, severity: str | None) -> Query:
    params: dict[str, Any] = {"since": since}
    where = _filters(["hour >= {since:DateTime}"], params, mint_url=mint, severity=severity)
    return Query(
        "SELECT hour, mint_url, severity, discrepancies, proofs_checked, rate_per_1k "  # noqa: S608
        f"FROM {db}.severity_rates_hourly WHERE {where} "
        "ORDER BY hour, mint_url, severity "
        f"SETTINGS {_HOURLY_SETTINGS}",
        params,
    )


# One column per block code (the domain's enumeration), named for people and dashboards.
BLOCK_CODE_COLUMNS: dict[BlockCode, str] = {
    BlockCode.HIGH_SEVERITY_DISCREPANCIES: "high_severity",
    BlockCode.PROOF_SPENT_AT_MINT: "proof_spent",
    BlockCode.PROOF_PENDING_AT_MINT: "proof_pending",
    BlockCode.UNRESOLVED_DISCREPANCIES: "unresolved",
    BlockCode.MINT_MISMATCH: "mint_mismatch",
    BlockCode.MINT_UNAVAILABLE: "mint_unavailable",
    BlockCode.INVALID_REQUEST: "invalid_request",
    BlockCode.DEADLINE_EXCEEDED: "deadline_exceeded",
}


def blocked_query(db: str, since: datetime, mint: str | None) -> Query:
    params: dict[str, Any] = {"since": since}
    where = _filters(["hour >= {since:DateTime}"], params, mint_url=mint)
    per_code = ", ".join(
        f"sumIf(answers, code = '{code.value}') AS {name}"
        for code, name in BLOCK_CODE_COLUMNS.items()
    )
    return Query(
        "SELECT hour, mint_url, sum(answers) AS preflights, "  # noqa: S608 - enum values
        f"sumIf(answers, verdict = 'BLOCKED') AS blocked, {per_code} "
        f"FROM {db}.preflight_hourly WHERE {where} "
        "GROUP BY hour, mint_url ORDER BY hour, mint_url",
        params,
    )


def top_types_query(db: str, since: datetime, limit: int) -> Query:
    return Query(
        "SELECT type, severity, sum(discrepancies) AS discrepancies, sum(amount) AS amount "  # noqa: S608
        f"FROM {db}.discrepancy_hourly WHERE hour >= {{since:DateTime}} "
        "GROUP BY type, severity HAVING discrepancies > 0 "
        "ORDER BY discrepancies DESC, type LIMIT {limit:UInt32}",
        {"since": since, "limit": limit},
    )


def latency_query(db: str, since: datetime, mint: str | None) -> Query:
    params: dict[str, Any] = {"since": since}
    where = _filters(["answered_at >= {since:DateTime64(3)}"], params, mint_url=mint)
    return Query(
        "SELECT toStartOfHour(answered_at) AS hour, mint_url, count() AS answers, "  # noqa: S608
        "round(quantileExact(0.5)(duration_ms), 3) AS p50_ms, "
        "round(quantileExact(0.99)(duration_ms), 3) AS p99_ms, "
        "round(max(duration_ms), 3) AS max_ms "
        f"FROM {db}.preflight_results WHERE {where} "
        "GROUP BY hour, mint_url ORDER BY hour, mint_url",
        params,
    )


# An export is one HTTP body held in memory: bounded, so one call cannot exhaust the worker.
EXPORT_MAX_ROWS = 1_000_000


def export_query(db: str, table: str, since: datetime, max_rows: int = EXPORT_MAX_ROWS) -> Query:
    sql = EXPORTS[check_table(table)].replace("{db}", db) + " LIMIT {max_rows:UInt64}"
    return Query(sql, {"since": since, "max_rows": max_rows})


# --- JSON shaping (pure) -----------------------------------------------------------------------


def _json_value(value: Any) -> Any:
    if isinstance(value, datetime):
        utc = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
        return utc.isoformat().replace("+00:00", "Z")
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, float) and value != value:  # NaN
        return None
    return value


def json_rows(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{k: _json_value(v) for k, v in row.items()} for row in rows]


def document(since: datetime, rows: list[dict[str, Any]], **filters: Any) -> dict[str, Any]:
    return {"since": _json_value(since), **filters, "rows": json_rows(rows)}


# --- providers ---------------------------------------------------------------------------------


class AnalyticsProvider(Protocol):
    async def hourly(
        self, since: str | None, mint: str | None = None, severity: str | None = None
    ) -> dict[str, Any]: ...

    async def blocked(self, since: str | None, mint: str | None = None) -> dict[str, Any]: ...

    async def top_types(
        self, since: str | None, limit: int | str | None = None
    ) -> dict[str, Any]: ...

    async def latency(self, since: str | None, mint: str | None = None) -> dict[str, Any]: ...

    async def export(self, table: str, since: str | None) -> bytes: ...

    async def report(self, since: str | None) -> str: ...

    def close(self) -> None: ...


class ClickHouseAnalytics:
    """Runs the analyst queries on a ClickHouse store (embedded or server)."""

    def __init__(self, store: ClickHouseStore, *, clock: Any = None) -> None:
        self.store = store
        self._now = clock or (lambda: datetime.now(UTC))

    async def _rows(self, query: Query) -> list[dict[str, Any]]:
        return await self.store.run(self.store.query, query.sql, query.params)

    async def hourly(
        self, since: str | None, mint: str | None = None, severity: str | None = None
    ) -> dict[str, Any]:
        start = resolve_since(since, self._now())
        mint, severity = check_mint(mint), check_severity(severity)
        rows = await self._rows(hourly_query(self.store.database, start, mint, severity))
        return document(start, rows, mint=mint, severity=severity)

    async def blocked(self, since: str | None, mint: str | None = None) -> dict[str, Any]:
        start, mint = resolve_since(since, self._now()), check_mint(mint)
        rows = await self._rows(blocked_query(self.store.database, start, mint))
        return document(start, rows, mint=mint)

    async def top_types(self, since: str | None, limit: int | str | None = None) -> dict[str, Any]:
        start, n = resolve_since(since, self._now()), check_limit(limit)
        rows = await self._rows(top_types_query(self.store.database, start, n))
        return document(start, rows, limit=n)

    async def latency(self, since: str | None, mint: str | None = None) -> dict[str, Any]:
        start, mint = resolve_since(since, self._now()), check_mint(mint)
        rows = await self._rows(latency_query(self.store.database, start, mint))
        return document(start, rows, mint=mint)

    async def export(self, table: str, since: str | None) -> bytes:
        start = resolve_since(since, self._now()) if since else EPOCH
        query = export_query(self.store.database, table, start)
        return await self.store.run(self.store.raw, query.sql, "Parquet", query.params)

    async def report(self, since: str | None) -> str:
        since = since or DEFAULT_REPORT_SINCE
        return render_report(
            hourly=await self.hourly(since),
            blocked=await self.blocked(since),
            top_types=await self.top_types(since, 10),
            latency=await self.latency(since),
            generated_at=self._now(),
        )

    def close(self) -> None:
        self.store.close()


class HttpAnalytics:
    """The same documents, from the process that owns the embedded chDB path."""

    def __init__(self, base_url: str, *, timeout_s: float = 60.0) -> None:
        self.base_url = base_url.rstrip("/")
        self._timeout = timeout_s

    async def _get(self, path: str, params: Mapping[str, Any]) -> httpx.Response:
        query = {k: str(v) for k, v in params.items() if v is not None}
        async with httpx.AsyncClient(timeout=self._timeout) as client:
            response = await client.get(f"{self.base_url}{path}", params=query)
        if response.status_code == 400:
            raise AnalyticsQueryError(_error_message(response))
        if response.status_code != 200:
            raise SinkError(
                f"{self.base_url}{path} answered {response.status_code}: {_error_message(response)}"
            )
        return response

    async def hourly(
        self, since: str | None, mint: str | None = None, severity: str | None = None
    ) -> dict[str, Any]:
        params = {"since": since, "mint": mint, "severity": severity}
        return dict((await self._get(f"{ANALYTICS_PREFIX}/hourly", params)).json())

    async def blocked(self, since: str | None, mint: str | None = None) -> dict[str, Any]:
        params = {"since": since, "mint": mint}
        return dict((await self._get(f"{ANALYTICS_PREFIX}/blocked", params)).json())

    async def top_types(self, since: str | None, limit: int | str | None = None) -> dict[str, Any]:
        params = {"since": since, "limit": limit}
        return dict((await self._get(f"{ANALYTICS_PREFIX}/top-types", params)).json())

    async def latency(self, since: str | None, mint: str | None = None) -> dict[str, Any]:
        params = {"since": since, "mint": mint}
        return dict((await self._get(f"{ANALYTICS_PREFIX}/latency", params)).json())

    async def export(self, table: str, since: str | None) -> bytes:
        path = f"{ANALYTICS_PREFIX}/export/{check_table(table)}"
        return (await self._get(path, {"since": since})).content

    async def report(self, since: str | None) -> str:
        return (await self._get("/report", {"since": since})).text

    def close(self) -> None:
        pass


def _error_message(response: httpx.Response) -> str:
    try:
        return str(response.json().get("message", response.text[:200]))
    except ValueError:
        return response.text[:200]


def web_base_url(settings: Settings) -> str:
    host = settings.web.host
    if host in ("0.0.0.0", "::", ""):
        host = "127.0.0.1"
    return f"http://{host}:{settings.web.port}"


async def open_provider(settings: Settings) -> tuple[AnalyticsProvider, str]:
    """The provider for the analyst CLI, and a line saying where the answers come from."""
    store = ClickHouseStore(settings, name="clickhouse-analyst")
    if not is_embedded(store.url):
        return ClickHouseAnalytics(store), f"ClickHouse server {store.display_url}"
    base = web_base_url(settings)
    try:
        async with httpx.AsyncClient(timeout=3.0) as client:
            response = await client.get(f"{base}{ANALYTICS_PREFIX}/ping")
    except httpx.TransportError:
        response = None
    if response is not None:
        store.close()
        if response.status_code != 200:
            raise ConfigError(
                f"{base} is serving but not the analytics endpoints (HTTP "
                f"{response.status_code}); the embedded chDB path belongs to that process"
            )
        return HttpAnalytics(base), f"the process serving {base}"
    try:
        await store.run(migrate, store, settings)  # an analyst on a fresh path sees empty tables
    except SinkError as exc:
        store.close()
        raise ConfigError(
            f"cannot open embedded ClickHouse at {store.display_url} ({exc.message}); if a "
            "worker owns it, make sure its web port is reachable"
        ) from None
    return ClickHouseAnalytics(store), f"embedded ClickHouse {store.display_url}"
