"""The worker's faces other than Kafka: the preflight CLI, the web API, metrics and logs."""

from __future__ import annotations

import asyncio
import json
import subprocess
import uuid
from pathlib import Path

import httpx
import pytest

from devkit.processes import WorkerProcess, read_topic
from devkit.wallet import Scenario
from streams.client import PreflightClient
from streams.core.settings import Settings, to_env
from tests.conftest import MINT_URL, REPO
from tests.support.pipeline import DOWN_MINT, ask, melt, npub, publish_token, ref

pytestmark = pytest.mark.stack


def _preflight_cli(
    settings: Settings,
    tmp_path: Path,
    owner: str,
    mint: str,
    proofs: list[dict[str, object]],
    timeout: float = 20,
) -> subprocess.CompletedProcess[str]:
    proofs_file = tmp_path / f"{uuid.uuid4().hex}.json"
    proofs_file.write_text(json.dumps(proofs))
    return subprocess.run(
        [
            str(REPO / ".venv" / "bin" / "proofrecon"),
            "preflight",
            "--npub",
            owner,
            "--mint",
            mint,
            "--proofs",
            str(proofs_file),
            "--timeout",
            str(timeout),
        ],
        env={**to_env(settings), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


async def test_preflight_cli_exit_codes(
    worker: WorkerProcess, pipeline_settings: Settings, real_scenario: Scenario, tmp_path: Path
) -> None:
    owner = npub()
    await publish_token(pipeline_settings, worker, owner, real_scenario.unspent[:1], "unspent")
    cleared = _preflight_cli(
        pipeline_settings,
        tmp_path,
        owner,
        MINT_URL,
        [ref(real_scenario.unspent[0], by_secret=True)],
    )
    assert cleared.returncode == 0, cleared.stderr
    assert json.loads(cleared.stdout)["verdict"] == "CLEARED"
    assert real_scenario.unspent[0].secret not in cleared.stdout + cleared.stderr

    await publish_token(pipeline_settings, worker, owner, real_scenario.spent_swap[:1], "unspent")
    blocked = _preflight_cli(
        pipeline_settings, tmp_path, owner, MINT_URL, [ref(real_scenario.spent_swap[0])]
    )
    assert blocked.returncode == 2, blocked.stderr
    assert json.loads(blocked.stdout)["code"] == "HIGH_SEVERITY_DISCREPANCIES"

    # Another npub: the owner's proofs are in the ledger at the real mint (MINT_MISMATCH).
    down = _preflight_cli(
        pipeline_settings, tmp_path, npub(), DOWN_MINT, [ref(real_scenario.unspent[0])]
    )
    assert down.returncode == 2 and json.loads(down.stdout)["code"] == "MINT_UNAVAILABLE"


def test_preflight_cli_times_out_without_worker(
    make_settings,
    real_scenario: Scenario,
    tmp_path: Path,  # type: ignore[no-untyped-def]
) -> None:
    settings = make_settings()  # its own topics: no worker consumes them
    import asyncio

    from streams.core.kafka import ensure_topics

    asyncio.run(ensure_topics(settings))
    result = _preflight_cli(
        settings, tmp_path, npub(), MINT_URL, [ref(real_scenario.unspent[0])], timeout=2
    )
    assert result.returncode == 3
    assert "no verdict" in result.stderr


async def test_validate_reports_without_a_verdict(
    worker: WorkerProcess, pipeline_settings: Settings, real_scenario: Scenario
) -> None:
    owner = npub()
    await publish_token(
        pipeline_settings, worker, owner, real_scenario.spent_elsewhere[:1], "unspent"
    )
    body = {
        "npub": owner,
        "mint_url": MINT_URL,
        "proofs": [ref(real_scenario.spent_elsewhere[0]), ref(real_scenario.unspent[0])],
    }
    async with httpx.AsyncClient(base_url=worker.url, timeout=10) as http:
        response = await http.post("/v1/validate", json=body)
        assert response.status_code == 200, response.text
        answer = response.json()
        assert answer["valid"] is False and answer["has_high_severity"] is True
        assert answer["recommendation"] == "BLOCK"
        assert {d["type"] for d in answer["discrepancies"]} == {
            "DB_UNSPENT_MINT_SPENT",
            "PROOF_NOT_IN_DB",
        }
        bad = await http.post("/v1/validate", json={"npub": owner, "proofs": []})
        assert bad.status_code == 400 and bad.json()["error"] == "INVALID_REQUEST"

        view = (
            await http.get(
                f"/v1/proofs/{real_scenario.spent_elsewhere[0].Y}", params={"npub": owner}
            )
        ).json()
    assert view["ledger"]["status"] == "unspent"
    assert view["last_mint_state"]["state"] == "SPENT"

    # Validation records what it found (source validate) about proofs the ledger holds, and
    # nothing about proofs it does not (arbitrary Ys must not pile up open discrepancies).
    events = await read_topic(
        pipeline_settings,
        pipeline_settings.topics.discrepancies,
        until=lambda rs: sum(r["npub"] == owner for r in rs) >= 1,
    )
    mine = [e for e in events if e["npub"] == owner]
    assert {(e["source"], e["type"]) for e in mine} == {("validate", "DB_UNSPENT_MINT_SPENT")}
    answers = await read_topic(
        pipeline_settings, pipeline_settings.topics.preflight_results, idle=1
    )
    assert all(a["npub"] != owner for a in answers)


async def test_metrics_health_and_log_phrases(
    client: PreflightClient,
    worker: WorkerProcess,
    pipeline_settings: Settings,
    real_scenario: Scenario,
) -> None:
    owner = npub()
    await publish_token(
        pipeline_settings, worker, owner, real_scenario.spent_elsewhere[:2], "unspent"
    )
    await publish_token(pipeline_settings, worker, owner, real_scenario.spent_swap[2:3], "pending")
    assert (await ask(client, melt(owner, real_scenario.spent_elsewhere[:2]))).verdict == "BLOCKED"
    reconciled = await ask(client, melt(owner, real_scenario.spent_swap[2:3]))
    # Corrected (pending -> spent), and blocked: the proof is SPENT at the mint.
    assert (reconciled.verdict, reconciled.code) == ("BLOCKED", "PROOF_SPENT_AT_MINT")
    assert reconciled.discrepancies_resolved == 1

    async with httpx.AsyncClient(base_url=worker.url, timeout=10) as http:
        assert (await http.get("/healthz")).json() == {"status": "ok"}
        ready = await http.get("/readyz")
        assert ready.status_code == 200 and ready.json()["tables_recovered"] is True
        metrics = (await http.get("/metrics")).text
    for name in (
        'proofrecon_discrepancies_total{lifecycle="OPENED",mint_url="http://127.0.0.1:3338"',
        'proofrecon_preflight_verdicts_total{code="HIGH_SEVERITY_DISCREPANCIES",verdict="BLOCKED"}',
        "proofrecon_preflight_duration_seconds_bucket",
        'proofrecon_mint_requests_total{mint_url="http://127.0.0.1:3338",outcome="ok"}',
        "proofrecon_mint_request_duration_seconds_bucket",
        'proofrecon_proofs_checked_total{mint_url="http://127.0.0.1:3338",source="preflight"}',
        'proofrecon_corrections_issued_total{set_status="spent"}',
        "_messages_received_total",  # Faust's own sensors share the registry
    ):
        assert name in metrics, name

    entries = worker.log_entries()
    messages = {e["msg"] for e in entries}
    for phrase in (
        "HIGH severity discrepancies detected",
        "Pre-flight reconciliation BLOCKED",
        "Proof state reconciliation completed",
    ):
        assert phrase in messages, phrase
    blocked = next(e for e in entries if e["msg"] == "Pre-flight reconciliation BLOCKED")
    assert blocked["level"] == "ERROR" and blocked["npub"]
    high = next(e for e in entries if e["msg"] == "HIGH severity discrepancies detected")
    assert all(len(p) == 12 for p in high["Y_prefixes"])  # Ys cut to a prefix
    full_ys = {p.Y for p in real_scenario.spent_elsewhere}
    assert not any(y in worker.log_text() for y in full_ys)


async def test_analytics_http_and_cli_agree_while_the_worker_runs(
    client: PreflightClient,
    worker: WorkerProcess,
    pipeline_settings: Settings,
    real_scenario: Scenario,
) -> None:
    """Embedded chDB belongs to the worker: the CLI must go through it and see the same rows."""
    owner = npub()
    await publish_token(
        pipeline_settings, worker, owner, real_scenario.spent_elsewhere[:1], "unspent"
    )
    assert (await ask(client, melt(owner, real_scenario.spent_elsewhere[:1]))).verdict == "BLOCKED"
    async with httpx.AsyncClient(base_url=worker.url, timeout=10) as http:
        # The sink stores each topic in its own batches: wait until the answer's every part
        # (the discrepancy and its denominator, the proof check) is in.
        for _ in range(120):
            hourly = (await http.get("/v1/analytics/hourly", params={"since": "24h"})).json()
            high = [row for row in hourly["rows"] if row["severity"] == "HIGH"]
            if high and all(row["proofs_checked"] > 0 for row in high):
                break
            await asyncio.sleep(0.25)
    assert any(row["discrepancies"] >= 1 and row["proofs_checked"] >= 1 for row in high)
    # Other tests' events may still be arriving: compare against HTTP answers taken right
    # before and after the CLI's, once they agree.
    for _ in range(10):
        before = await _hourly(worker)
        cli = _analytics_cli(pipeline_settings)
        after = await _hourly(worker)
        if before == after:
            break
    assert before == after, "the hourly table never held still"
    assert cli == before


async def _hourly(worker: WorkerProcess) -> list[dict[str, object]]:
    async with httpx.AsyncClient(base_url=worker.url, timeout=10) as http:
        reply = await http.get("/v1/analytics/hourly", params={"since": "24h"})
    rows: list[dict[str, object]] = reply.json()["rows"]
    return rows


def _analytics_cli(settings: Settings) -> list[dict[str, object]]:
    command = [str(REPO / ".venv" / "bin" / "proofrecon"), "analytics", "hourly", "--json"]
    cli = subprocess.run(
        [*command, "--since", "24h"],
        env={**to_env(settings), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert cli.returncode == 0, cli.stderr
    rows: list[dict[str, object]] = json.loads(cli.stdout)["rows"]
    return rows
