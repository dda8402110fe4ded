"""Hourly severity-rate query latency over >= 10 million rows: the materialized views against a
direct GROUP BY over the raw tables.

    .venv/bin/python -m bench hourly_query [--quick]
    .venv/bin/python -m bench.bench_hourly_query [--rows 10000000]

Target (DESIGN.md): the hourly severity-rate query over 10M rows in <= 20 ms.

1. A fresh embedded chDB gets the real schema (migrations), then `--rows` discrepancy rows over
   30 days and 8 mints, and proof-check rows (a tenth as many), generated inside ClickHouse
   (INSERT ... SELECT FROM numbers()) so the materialized views fill exactly as the sink fills
   them.
2. The measured query is the analysts' one (`sinks.analytics.hourly_query`: the
   `severity_rates_hourly` view over `discrepancy_hourly` and `proof_checks_hourly`), for the last
   24 hours and for all 30 days. The baseline computes the same rows with a GROUP BY over the raw
   `discrepancies` and `proof_checks` tables. Both results are checked equal first.
3. Each query runs 5 times to warm up, then 30 times; the p50 is reported (p90 in the details).
   The ratio is MV / direct (below 1 means the views are faster).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from datetime import UTC, datetime, timedelta
from typing import Any

from bench.common import (
    BenchResult,
    at_most,
    bench_settings,
    format_table,
    machine,
    new_run_id,
    ratio,
    say,
    scratch_dir,
    write_json,
)
from sinks.analytics import hourly_query
from sinks.clickhouse import ClickHouseStore
from sinks.migrate import migrate

TARGET_MS = 20.0
DAYS = 30
MINTS = 8

FILL_DISCREPANCIES = """
INSERT INTO {db}.discrepancies
    (event_id, detected_at, npub, mint_url, token_id, Y, amount, keyset_id, type, severity,
     db_status, mint_state, action, source, request_id, lifecycle, _topic, _partition, _offset)
SELECT
    concat('e', toString(number)),
    toDateTime64({end:DateTime}, 3, 'UTC') - toIntervalMillisecond(number * {step:UInt64}),
    concat('npub', toString(number % 5000)),
    concat('https://mint', toString(number % {mints:UInt32}), '.example'),
    NULL,
    concat('02', leftPad(hex(number), 64, '0')),
    1 + number % 64,
    '009a1f293253e41e',
    ['DB_UNSPENT_MINT_SPENT', 'DB_SPENT_MINT_UNSPENT', 'DB_PENDING_MINT_SPENT', 'PROOF_NOT_IN_DB',
     'DB_UNSPENT_MINT_PENDING', 'DB_PENDING_MINT_UNSPENT', 'DB_SPENT_MINT_PENDING'][1 + number % 7],
    ['HIGH', 'MEDIUM', 'MEDIUM', 'LOW', 'LOW', 'LOW', 'LOW'][1 + number % 7],
    'unspent', 'SPENT', 'MARK_SPENT', 'sweep', NULL,
    if(number % 10 = 0, 'RESOLVED', 'OPENED'),
    'bench', 0, number
FROM numbers({rows:UInt64})
"""

FILL_CHECKS = """
INSERT INTO {db}.proof_checks
    (event_id, checked_at, mint_url, source, proofs_checked, _topic, _partition, _offset)
SELECT
    concat('c', toString(number)),
    toDateTime64({end:DateTime}, 3, 'UTC') - toIntervalMillisecond(number * {step:UInt64}),
    concat('https://mint', toString(number % {mints:UInt32}), '.example'),
    ['preflight', 'sweep'][1 + number % 2],
    50 + number % 400,
    'bench', 0, number
FROM numbers({rows:UInt64})
"""

DIRECT = """
SELECT hour, mint_url, severity, discrepancies, proofs_checked,
       if(proofs_checked = 0, NULL, round(1000 * discrepancies / proofs_checked, 3)) AS rate_per_1k
FROM
(
    SELECT toStartOfHour(detected_at) AS hour, mint_url, severity,
           countIf(lifecycle = 'OPENED') AS discrepancies
    FROM {db}.discrepancies WHERE detected_at >= {since:DateTime}
    GROUP BY hour, mint_url, severity
) AS d
FULL OUTER JOIN
(
    SELECT hour, mint_url, severity, proofs_checked
    FROM
    (
        SELECT toStartOfHour(checked_at) AS hour, mint_url, sum(proofs_checked) AS proofs_checked
        FROM {db}.proof_checks WHERE checked_at >= {since:DateTime}
        GROUP BY hour, mint_url
    )
    ARRAY JOIN ['HIGH', 'MEDIUM', 'LOW'] AS severity
) AS c
USING (hour, mint_url, severity)
ORDER BY hour, mint_url, severity
"""


def timed(store: ClickHouseStore, sql: str, params: dict[str, Any], runs: int) -> list[float]:
    for _ in range(5):
        store.query(sql, params)
    out = []
    for _ in range(runs):
        started = time.perf_counter()
        store.query(sql, params)
        out.append((time.perf_counter() - started) * 1000)
    return out


def fill(store: ClickHouseStore, rows: int) -> float:
    db = store.database
    end = datetime.now(UTC).replace(microsecond=0)
    span_ms = DAYS * 24 * 3600 * 1000
    started = time.perf_counter()
    checks = max(1, rows // 10)
    params = {"end": end, "mints": MINTS}
    store.command(
        FILL_CHECKS.replace("{db}", db), {**params, "rows": checks, "step": span_ms // checks}
    )
    chunk = 2_000_000  # several inserts, as a sink's batches would be, and bounded memory
    for first in range(0, rows, chunk):
        n = min(chunk, rows - first)
        sql = FILL_DISCREPANCIES.replace(
            "FROM numbers({rows:UInt64})", "FROM numbers({first:UInt64}, {rows:UInt64})"
        )
        store.command(
            sql.replace("{db}", db), {**params, "rows": n, "first": first, "step": span_ms // rows}
        )
        say(f"  {first + n:,} / {rows:,} rows")
    return time.perf_counter() - started


def run_sync(quick: bool, rows: int | None) -> BenchResult:
    n = rows or (1_000_000 if quick else 10_000_000)
    with scratch_dir("hourly") as tmp:
        settings = bench_settings(new_run_id(), tmp)
        store = ClickHouseStore(settings)
        try:
            migrate(store, settings)
            say(f"filling {n:,} discrepancy rows over {DAYS} days and {MINTS} mints")
            fill_s = fill(store, n)
            store.command(f"OPTIMIZE TABLE {store.database}.discrepancy_hourly FINAL")
            store.command(f"OPTIMIZE TABLE {store.database}.proof_checks_hourly FINAL")
            now = datetime.now(UTC)
            results: dict[str, dict[str, float]] = {}
            for label, since in (
                ("24h", now - timedelta(hours=24)),
                ("30d", now - timedelta(days=31)),
            ):
                since = since.replace(minute=0, second=0, microsecond=0)
                mv = hourly_query(store.database, since, None, None)
                direct_sql = DIRECT.replace("{db}", store.database)
                assert store.query(mv.sql, mv.params) == store.query(direct_sql, {"since": since})
                mv_ms = timed(store, mv.sql, mv.params, 30)
                direct_ms = timed(store, direct_sql, {"since": since}, 10)
                results[label] = {
                    "mv_p50_ms": round(statistics.median(mv_ms), 2),
                    "mv_p90_ms": round(sorted(mv_ms)[int(0.9 * len(mv_ms))], 2),
                    "direct_p50_ms": round(statistics.median(direct_ms), 2),
                    "direct_p90_ms": round(sorted(direct_ms)[int(0.9 * len(direct_ms))], 2),
                }
                say(f"  {label}: {results[label]}")
            total = store.query(f"SELECT count() AS n FROM {store.database}.discrepancies")[0]["n"]
        finally:
            store.close()
    rows_of = {"rows": int(total), "fill_s": round(fill_s, 1), "machine": machine()}
    main, wide = results["24h"], results["30d"]
    more = [
        BenchResult(
            name="hourly_query",
            metric="hourly query, 30 days (p50)",
            value=wide["mv_p50_ms"],
            unit="ms",
            baseline=wide["direct_p50_ms"],
            ratio=ratio(wide["mv_p50_ms"], wide["direct_p50_ms"]),
            target=f"<= {TARGET_MS:g} ms",
            passed=at_most(wide["mv_p50_ms"], TARGET_MS),
            details=wide,
        )
    ]
    result = BenchResult(
        name="hourly_query",
        metric=f"hourly query, 24 h over {int(total):,} rows (p50)",
        value=main["mv_p50_ms"],
        unit="ms",
        baseline=main["direct_p50_ms"],
        ratio=ratio(main["mv_p50_ms"], main["direct_p50_ms"]),
        target=f"<= {TARGET_MS:g} ms",
        passed=at_most(main["mv_p50_ms"], TARGET_MS),
        details={**main, **rows_of, "baseline": "direct GROUP BY over the raw tables"},
        more=more,
    )
    write_json("bench_hourly_query", result.to_json())
    return result


async def run(quick: bool, rows: int | None = None) -> BenchResult:
    return await asyncio.to_thread(run_sync, quick, rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=None)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    print(format_table([run_sync(args.quick, args.rows)]))


if __name__ == "__main__":
    main()
