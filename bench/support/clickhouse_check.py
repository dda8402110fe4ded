"""Where the ClickHouse sink runs beside the pipeline, and did a crash leave duplicate rows?

The sink runs inside the worker (which then owns the chDB path) unless the settings turn that
off (`clickhouse.sink_enabled=false`); then it runs alone as `proofrecon sink`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from devkit.processes import SinkProcess
from streams.core.settings import Settings

SinkMode = Literal["worker", "standalone"]


def sink_mode(settings: Settings) -> SinkMode:
    return "worker" if settings.clickhouse.sink_enabled else "standalone"


def standalone_sink(settings: Settings, log_path: Path, port: int) -> SinkProcess:
    """`proofrecon sink` with the worker's settings but a web port of its own."""
    web = settings.web.model_copy(update={"port": port})
    return SinkProcess(settings.model_copy(update={"web": web}), log_path)


def duplicate_rows(settings: Settings) -> dict[str, Any]:
    """Rows minus distinct ids per sink table, and hourly aggregates against their raw rows.

    Call only once no process holds the chDB path (embedded ClickHouse is one process per path).
    """
    from sinks.clickhouse import ClickHouseStore
    from sinks.rows import SPECS

    store = ClickHouseStore(settings, name="bench-check")
    try:
        tables: dict[str, dict[str, int]] = {}
        for spec in SPECS.values():
            table, key = store.table(spec.table), spec.id_field
            sql = f"SELECT count() AS n, uniqExact({key}) AS ids FROM {table}"
            row = store.query(sql)[0]
            tables[spec.table] = {"rows": int(row["n"]), "duplicates": int(row["n"] - row["ids"])}
        raw = tables.get("discrepancies", {}).get("rows", 0)
        # Every raw row feeds one count (OPENED or RESOLVED) of the hourly view, once.
        hourly_table = store.table("discrepancy_hourly")
        hourly_sql = f"SELECT sum(discrepancies) + sum(resolved) AS n FROM {hourly_table}"
        hourly = int(store.query(hourly_sql)[0]["n"] or 0)
    finally:
        store.close()
    duplicates = sum(t["duplicates"] for t in tables.values()) + max(0, hourly - raw)
    return {"tables": tables, "discrepancy_hourly_sum": hourly, "duplicates": duplicates}
