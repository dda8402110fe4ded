"""The sink's and the analysts' CLI commands (wired into `proofrecon` by streams/cli.py)."""

from __future__ import annotations

import argparse
import asyncio
import io
import json
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

from sinks.analytics.queries import BLOCK_CODE_COLUMNS, EXPORTS, AnalyticsProvider, open_provider
from sinks.clickhouse import ClickHouseStore
from sinks.migrate import migrate, schema_version
from streams.core.errors import ConfigError, SinkError
from streams.core.settings import Settings

T = TypeVar("T")

HOURLY_COLUMNS = (
    ("hour", "hour"),
    ("mint_url", "mint"),
    ("severity", "severity"),
    ("discrepancies", "discrepancies"),
    ("proofs_checked", "proofs checked"),
    ("rate_per_1k", "rate per 1,000"),
)
BLOCKED_COLUMNS = (
    ("hour", "hour"),
    ("mint_url", "mint"),
    ("preflights", "preflights"),
    ("blocked", "blocked"),
    *((name, code.value) for code, name in BLOCK_CODE_COLUMNS.items()),
)


def format_table(rows: Sequence[dict[str, Any]], columns: Sequence[tuple[str, str]]) -> str:
    """A plain aligned text table; numbers right-aligned, None as '-'."""
    header = [title for _, title in columns]
    body = [[_text(row.get(key)) for key, _ in columns] for row in rows]
    widths = [max(len(c) for c in col) for col in zip(header, *body, strict=False)]
    numeric = [all(_is_number(row.get(key)) for row in rows) and rows for key, _ in columns]
    lines = []
    for cells in [header, *body]:
        parts = [
            cell.rjust(width) if num else cell.ljust(width)
            for cell, width, num in zip(cells, widths, numeric, strict=True)
        ]
        lines.append("  ".join(parts).rstrip())
    return "\n".join(lines)


def _text(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.3f}".rstrip("0").rstrip(".") if value % 1 else f"{value:.0f}"
    if isinstance(value, str) and value.endswith(":00:00Z"):
        return value[:13].replace("T", " ") + ":00Z"  # an hour, shortened
    return str(value)


def _is_number(value: Any) -> bool:
    return value is None or (isinstance(value, int | float) and not isinstance(value, bool))


async def _with_provider(settings: Settings, use: Callable[[AnalyticsProvider], Awaitable[T]]) -> T:
    provider, _ = await open_provider(settings)
    try:
        return await use(provider)
    finally:
        provider.close()


# --- handlers ----------------------------------------------------------------------------------


def analytics_hourly(args: argparse.Namespace, settings: Settings) -> int:
    doc = asyncio.run(
        _with_provider(settings, lambda p: p.hourly(args.since, args.mint, args.severity))
    )
    if args.json:
        print(json.dumps(doc, indent=2))
    elif doc["rows"]:
        print(format_table(doc["rows"], HOURLY_COLUMNS))
    else:
        print(f"no discrepancies or proof checks since {doc['since']}")
    return 0


def analytics_blocked(args: argparse.Namespace, settings: Settings) -> int:
    doc = asyncio.run(_with_provider(settings, lambda p: p.blocked(args.since, args.mint)))
    if args.json:
        print(json.dumps(doc, indent=2))
    elif doc["rows"]:
        print(format_table(doc["rows"], BLOCKED_COLUMNS))
    else:
        print(f"no preflight answers since {doc['since']}")
    return 0


def analytics_export(args: argparse.Namespace, settings: Settings) -> int:
    import pyarrow.parquet as pq

    directory: Path = args.parquet
    directory.mkdir(parents=True, exist_ok=True)

    async def export_all(provider: AnalyticsProvider) -> dict[str, bytes]:
        return {table: await provider.export(table, args.since) for table in EXPORTS}

    for table, data in asyncio.run(_with_provider(settings, export_all)).items():
        path = directory / f"{table}.parquet"
        path.write_bytes(data)
        rows = pq.ParquetFile(io.BytesIO(data)).metadata.num_rows if data else 0
        print(f"{path}\t{rows} rows")
    return 0


def write_report(args: argparse.Namespace, settings: Settings) -> int:
    html = asyncio.run(_with_provider(settings, lambda p: p.report(args.since)))
    out: Path = args.out
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(html, encoding="utf-8")
    print(out.resolve())
    return 0


def clickhouse_migrate(args: argparse.Namespace, settings: Settings) -> int:
    store = ClickHouseStore(settings, name="clickhouse-migrate")
    try:
        lines = migrate(store, settings)
        version = schema_version(store)
    except SinkError as exc:
        raise ConfigError(
            f"{exc.message}; in embedded mode a running worker or sink owns the chDB path and "
            "applies migrations itself at start"
        ) from None
    finally:
        store.close()
    for line in lines:
        print(line)
    print(f"schema version {version} at {store.display_url} (database {store.database})")
    return 0


def print_analytics_summary(settings: Settings, report_out: Path, since: str = "24h") -> Path:
    """For `make demo`'s ending: print the hourly severity table, write the HTML report.

    Goes through the worker's web port in embedded mode (the worker owns the chDB path), so call
    it while the worker still runs. Returns the report's path.
    """

    async def both(provider: AnalyticsProvider) -> tuple[dict[str, Any], str]:
        return await provider.hourly(since), await provider.report(since)

    doc, html = asyncio.run(_with_provider(settings, both))
    print(format_table(doc["rows"], HOURLY_COLUMNS) if doc["rows"] else "no analytics rows yet")
    report_out.parent.mkdir(parents=True, exist_ok=True)
    report_out.write_text(html, encoding="utf-8")
    print(f"report: {report_out.resolve()}")
    return report_out.resolve()
