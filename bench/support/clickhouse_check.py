"""Is a ClickHouse sink running beside the pipeline, and did a crash leave duplicate rows?

The sink was being written while these benchmarks were: it may run inside the worker (the worker
then owns the chDB path) or alone as `proofrecon sink`. `sink_mode()` tells which exists now, so
the crash benchmark covers whatever is there and says "not covered" when nothing is.
"""

from __future__ import annotations

import importlib.util
import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Literal

from streams.settings import Settings, to_env

REPO = Path(__file__).resolve().parents[2]
SinkMode = Literal["worker", "standalone"]
# Source markers of a sink wired into the worker (streams/app.py registers its services).
_WORKER_MARKERS = ("ClickHouseSinkService", "sinks.service")


def sink_mode() -> SinkMode | None:
    app_source = (REPO / "streams" / "app.py").read_text()
    worker_source = (REPO / "streams" / "worker.py").read_text()
    if any(m in app_source or m in worker_source for m in _WORKER_MARKERS):
        return "worker"
    if importlib.util.find_spec("sinks.standalone") is not None:
        return "standalone"
    return None


class SinkProcess:
    """`proofrecon sink` in its own process, on its own web port, sharing the worker's settings."""

    def __init__(self, settings: Settings, log_path: Path, port: int) -> None:
        self.settings = settings
        self.log_path = log_path
        self.port = port
        self.proc: subprocess.Popen[bytes] | None = None

    def launch(self) -> None:
        """Start the process without waiting (it can start beside the worker)."""
        env = {**os.environ, **to_env(self.settings), "PROOFRECON_WEB_PORT": str(self.port)}
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "streams.cli", "sink"],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=REPO,
            )

    def wait_ready(self, timeout: float = 120.0) -> None:
        """Until the sink listens on its web port (it does so once its service started)."""
        assert self.proc is not None, "launch() first"
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"the sink exited ({self.proc.returncode}); see {self.log_path}")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return
            except OSError:
                time.sleep(0.3)
        raise RuntimeError(f"the sink did not listen within {timeout} s; see {self.log_path}")

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)

    def stop(self, timeout: float = 30.0) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()


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
