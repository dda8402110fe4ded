"""Versioned schema migrations (`sinks/migrations/NNN_name.sql`), applied idempotently.

Each file is applied once, in version order, and recorded in `<db>.schema_migrations` with its
checksum; its statements are idempotent too (IF NOT EXISTS), so a run cut short is simply run
again. A recorded migration whose file changed is refused: write a new migration instead.
After the files, the configured TTLs are compared with the tables' and changed where they differ.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from importlib import resources

from sinks.clickhouse import ClickHouseStore
from streams.core.errors import SinkError
from streams.core.settings import Settings

# Inserts remembered per table for insert deduplication: far more than can be in flight between
# a batch's first insert and its replay (one insert per partition and batch).
DEDUP_WINDOW = 10_000
_FILE = re.compile(r"^(\d{3})_([a-z0-9_]+)\.sql$")
_SEPARATOR = re.compile(r"^;\s*$", re.MULTILINE)
_TTL_DAYS = re.compile(r"toIntervalDay\((\d+)\)")

# table -> (TTL time expression, which setting): `ALTER ... MODIFY TTL` when the setting changed.
TTL_TABLES: dict[str, tuple[str, str]] = {
    "discrepancies": ("toDateTime(detected_at)", "ttl_days"),
    "proof_checks": ("toDateTime(checked_at)", "ttl_days"),
    "preflight_results": ("toDateTime(answered_at)", "ttl_days"),
    "reconciliation_actions": ("toDateTime(issued_at)", "ttl_days"),
    "discrepancy_hourly": ("hour", "hourly_ttl_days"),
    "proof_checks_hourly": ("hour", "hourly_ttl_days"),
    "preflight_hourly": ("hour", "hourly_ttl_days"),
    "severity_hourly": ("hour", "hourly_ttl_days"),
}


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    text: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.text.encode()).hexdigest()

    def statements(self, placeholders: dict[str, str]) -> list[str]:
        body = "\n".join(
            line for line in self.text.splitlines() if not line.lstrip().startswith("--")
        )
        for key, value in placeholders.items():
            body = body.replace("{" + key + "}", value)
        return [s.strip() for s in _SEPARATOR.split(body) if s.strip()]


def load_migrations() -> list[Migration]:
    folder = resources.files("sinks") / "migrations"
    found = []
    for entry in folder.iterdir():
        match = _FILE.match(entry.name)
        if match:
            found.append(Migration(int(match.group(1)), match.group(2), entry.read_text("utf-8")))
    found.sort(key=lambda m: m.version)
    versions = [m.version for m in found]
    if len(set(versions)) != len(versions):
        raise SinkError(f"two migrations share a version: {versions}")
    return found


def placeholders(settings: Settings, database: str) -> dict[str, str]:
    ch = settings.clickhouse
    return {
        "db": database,
        "ttl_days": str(ch.ttl_days),
        "hourly_ttl_days": str(ch.hourly_ttl_days),
        "dedup_window": str(DEDUP_WINDOW),
    }


def migrate(store: ClickHouseStore, settings: Settings) -> list[str]:
    """Apply pending migrations and TTL changes. Returns one line per action taken."""
    db = store.database
    store.command(f"CREATE DATABASE IF NOT EXISTS {db}")
    store.command(
        f"CREATE TABLE IF NOT EXISTS {db}.schema_migrations "
        "(version UInt32, name String, checksum String, "
        "applied_at DateTime64(3, 'UTC') DEFAULT now64(3)) "
        "ENGINE = MergeTree ORDER BY version"
    )
    applied = {
        int(row["version"]): str(row["checksum"])
        for row in store.query(f"SELECT version, checksum FROM {db}.schema_migrations")  # noqa: S608
    }
    values = placeholders(settings, db)
    lines: list[str] = []
    for migration in load_migrations():
        if migration.version in applied:
            if applied[migration.version] != migration.checksum:
                raise SinkError(
                    f"migration {migration.version:03d}_{migration.name} changed after it was "
                    "applied; add a new migration instead"
                )
            continue
        for statement in migration.statements(values):
            store.command(statement)
        store.command(
            f"INSERT INTO {db}.schema_migrations (version, name, checksum) "  # noqa: S608
            "VALUES ({v:UInt32}, {n:String}, {c:String})",
            {"v": migration.version, "n": migration.name, "c": migration.checksum},
        )
        lines.append(f"applied {migration.version:03d}_{migration.name}")
    lines += _apply_ttls(store, settings)
    return lines


def _apply_ttls(store: ClickHouseStore, settings: Settings) -> list[str]:
    rows = store.query(
        "SELECT name, engine_full FROM system.tables WHERE database = {db:String}",
        {"db": store.database},
    )
    engines = {str(r["name"]): str(r["engine_full"]) for r in rows}
    lines = []
    for table, (expression, setting) in TTL_TABLES.items():
        want = int(getattr(settings.clickhouse, setting))
        match = _TTL_DAYS.search(engines.get(table, ""))
        if match is None or int(match.group(1)) == want:
            continue
        store.command(
            f"ALTER TABLE {store.table(table)} MODIFY TTL {expression} + toIntervalDay({want})"
        )
        lines.append(f"ttl {table}: {match.group(1)} -> {want} days")
    return lines


def schema_version(store: ClickHouseStore) -> int:
    sql = f"SELECT max(version) AS v FROM {store.database}.schema_migrations"  # noqa: S608
    rows = store.query(sql)
    return int(rows[0]["v"]) if rows else 0
