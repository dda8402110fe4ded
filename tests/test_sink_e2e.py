"""Kafka → ClickHouse end to end: real broker, `proofrecon sink` as a subprocess, embedded chDB.

One sink and one data set for the module: events over three hours and two mints, plus bad records
and a record carrying a field that must never be stored. The sink owns the chDB path, so every
check goes through its HTTP API or the analyst CLI (which goes through the same API), and the
exact row counts are read from chDB after the sink stopped.
"""

from __future__ import annotations

import asyncio
import io
import json
import subprocess
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pyarrow.parquet as pq
import pytest

from devkit.processes import process_env
from devkit.sample import SampleSet, sample_events
from streams.core.contracts import to_json_dict
from streams.core.kafka import ensure_topics
from streams.core.settings import Settings
from tests.conftest import build_test_settings
from tests.test_sink_support import (
    CLI,
    REPO,
    SinkProcess,
    all_committed,
    expected_blocked,
    expected_counts,
    expected_hourly,
    hourly_by_key,
    produce,
    sample_messages,
    table_counts,
    topic_of,
    wait_for,
)

pytestmark = [pytest.mark.stack, pytest.mark.slow]

MINTS = ["http://mint-a.test:3338", "http://mint-b.test:3338"]
SECRET = "do-not-store-this-secret-" + "7f" * 16


class World:
    def __init__(self, settings: Settings, sink: SinkProcess, sample: SampleSet) -> None:
        self.settings = settings
        self.sink = sink
        self.sample = sample

    def get(self, path: str, **params: str) -> httpx.Response:
        return httpx.get(f"{self.sink.url}{path}", params=params, timeout=30)

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(CLI), *args],
            env=process_env(self.settings),
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )


@pytest.fixture(scope="module")
def world(kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    tmp = tmp_path_factory.mktemp("sink-e2e")
    settings = build_test_settings(uuid.uuid4().hex[:10], tmp / "data")
    start = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(hours=3)
    sample = sample_events(start=start, hours=3, mints=MINTS, per_hour=15, seed=5)
    asyncio.run(ensure_topics(settings))
    sink = SinkProcess(settings, tmp / "sink.log").start()
    messages = sample_messages(settings, sample)
    topic = topic_of(settings, "discrepancies")
    with_secret = {**to_json_dict(sample.discrepancies[0]), "event_id": "with-secret"}
    with_secret["secret"] = SECRET
    sample.discrepancies.append(
        sample.discrepancies[0].model_copy(update={"event_id": "with-secret"})
    )
    bad = [
        (topic, b"k", b"{not json"),
        (topic, b"k", json.dumps({"event_id": "x", "severity": "HUGE"}).encode()),
        (topic, b"k", json.dumps(with_secret).encode()),
    ]
    asyncio.run(produce(settings, messages + bad))
    wait_for(lambda: all_committed(settings), 60, "the sink to commit every offset")
    try:
        yield World(settings, sink, sample)
    finally:
        sink.stop()


def test_events_appear_and_hourly_equals_python_recount(world: World) -> None:
    doc = world.get("/v1/analytics/hourly", since="24h").json()
    got = hourly_by_key(doc)
    want = expected_hourly(world.sample)
    assert len({k[0] for k in want}) == 3 and len({k[1] for k in want}) == 2  # hours, mints
    assert set(got) == set(want)
    for key, (found, checked) in want.items():
        row = got[key]
        assert (row["discrepancies"], row["proofs_checked"]) == (found, checked), key
        assert row["rate_per_1k"] == pytest.approx(1000 * found / checked, abs=0.0011)
    blocked = world.get("/v1/analytics/blocked", since="24h").json()["rows"]
    got_blocked = {(r["hour"], r["mint_url"]): (r["preflights"], r["blocked"]) for r in blocked}
    assert got_blocked == expected_blocked(world.sample)


def test_bad_records_are_skipped_and_counted(world: World) -> None:
    status = world.sink.status()
    assert status["bad_records"] == 2
    log = world.sink.log_text()
    assert log.count("sink skipped a bad record") == 2
    assert "not json" not in log and "HUGE" not in log  # reasons and offsets, never values


def test_filters_and_cli_agree_with_http(world: World) -> None:
    for args, params in [
        ([], {}),
        (["--mint", MINTS[1]], {"mint": MINTS[1]}),
        (["--severity", "HIGH"], {"severity": "HIGH"}),
    ]:
        http_doc = world.get("/v1/analytics/hourly", since="24h", **params).json()
        run = world.cli("analytics", "hourly", "--since", "24h", "--json", *args)
        assert run.returncode == 0, run.stderr
        assert json.loads(run.stdout) == http_doc
        assert http_doc["rows"]
        if "mint" in params:
            assert {r["mint_url"] for r in http_doc["rows"]} == {MINTS[1]}
        if "severity" in params:
            assert {r["severity"] for r in http_doc["rows"]} == {"HIGH"}
    table = world.cli("analytics", "hourly", "--since", "24h")
    assert table.returncode == 0 and "rate per 1,000" in table.stdout
    blocked = world.cli("analytics", "blocked", "--since", "24h")
    assert blocked.returncode == 0 and "MINT_UNAVAILABLE" in blocked.stdout
    bad = world.get("/v1/analytics/hourly", since="yesterday")
    assert bad.status_code == 400 and bad.json()["error"] == "INVALID_REQUEST"


def test_export_parquet_and_no_secret_stored(world: World, tmp_path: Path) -> None:
    run = world.cli("analytics", "export", "--parquet", str(tmp_path))
    assert run.returncode == 0, run.stderr
    tables = {p.stem: pq.read_table(p) for p in tmp_path.glob("*.parquet")}
    assert tables["discrepancies"].num_rows == len(world.sample.discrepancies)
    assert tables["preflight_results"].num_rows == len(world.sample.preflights)
    assert tables["reconciliation_actions"].num_rows == len(world.sample.corrections)
    assert "_offset" in tables["discrepancies"].column_names  # the Kafka coordinates, for audit
    for path in tmp_path.glob("*.parquet"):
        assert SECRET.encode() not in path.read_bytes()
    one = world.get("/v1/analytics/export/discrepancies")
    assert pq.read_table(io.BytesIO(one.content)).num_rows == len(world.sample.discrepancies)
    assert SECRET not in world.sink.log_text()


def test_report_opens_in_chromium_with_charts(world: World, artifacts_dir: Path) -> None:
    out = artifacts_dir / "sink-report.html"
    run = world.cli("report", "--out", str(out), "--since", "24h")
    assert run.returncode == 0, run.stderr
    served = world.get("/report", since="24h").text
    written = out.read_text()
    assert _charts(served) == _charts(written)  # the same page (only the timestamp differs)
    dom, errors = _chromium(out, artifacts_dir / "sink-report.png", artifacts_dir)
    assert not errors, errors
    assert dom.count('class="chart-svg"') >= 5  # 2 mints' rates, blocked, types, latency
    assert dom.count("<polyline") >= 7 and dom.count('class="bar"') >= 7
    assert "No data in this window" not in dom
    assert (artifacts_dir / "sink-report.png").stat().st_size > 10_000


def test_counts_exact_after_stop(world: World) -> None:
    assert world.sink.stop() == 0
    counts = table_counts(world.settings)
    want = expected_counts(world.sample)
    assert {k: counts[k] for k in want} == want
    assert counts["sink_batches"] > 0


def _charts(html: str) -> list[str]:
    return [part.split("</figcaption>")[0] for part in html.split("<figcaption>")[1:]]


def _chromium(page: Path, screenshot: Path, workdir: Path) -> tuple[str, list[str]]:
    profile = workdir / f"chromium-{uuid.uuid4().hex[:8]}"
    flags = [
        "chromium",
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={profile}",
        "--window-size=1280,2400",
    ]
    shot = subprocess.run(
        [*flags, f"--screenshot={screenshot}", page.as_uri()],
        capture_output=True,
        text=True,
        timeout=90,
        check=False,
    )
    dump = subprocess.run(
        [*flags, "--enable-logging=stderr", "--v=0", "--dump-dom", page.as_uri()],
        capture_output=True,
        text=True,
        timeout=90,
        check=False,
    )
    errors: list[Any] = []
    if shot.returncode != 0 or dump.returncode != 0:
        errors.append(f"chromium exited {shot.returncode}/{dump.returncode}: {dump.stderr[-500:]}")
    errors += [line for line in dump.stderr.splitlines() if "CONSOLE" in line]
    return dump.stdout, errors
