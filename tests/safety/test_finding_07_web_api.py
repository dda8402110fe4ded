"""Finding 7 (high): the web API had no authentication, and `/v1/validate` could starve melts.

At 7262b21 every endpoint (validate, a user's ledger row, analytics exports, metrics) answered
anyone, the image bound 0.0.0.0, validate spent the same mint budget as melts (70 calls in a row,
then a clean melt was BLOCKED / MINT_UNAVAILABLE), and each validate call opened a PROOF_NOT_IN_DB
discrepancy for every made-up Y it was sent, never to be resolved.
"""

from __future__ import annotations

import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from devkit.processes import CLI, REPO, WorkerProcess, process_env, read_topic
from devkit.wallet import Scenario, WalletProof
from streams.client import PreflightClient
from streams.core.cashu import y_from_secret
from streams.core.settings import Settings, WebSettings
from streams.core.webauth import auth_middleware
from tests.conftest import MINT_URL, build_test_settings, clear_proofrecon_env
from tests.safety.helpers import eventually, proof_view
from tests.support.pipeline import ask, melt, npub, publish_token, ref

TOKEN = f"safety-web-{uuid.uuid4().hex}"
BEARER = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture(scope="module")
def web_settings(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Settings]:
    with pytest.MonkeyPatch.context() as mp:
        clear_proofrecon_env(mp)
        yield build_test_settings(
            uuid.uuid4().hex[:10],
            tmp_path_factory.mktemp("web") / "data",
            web={"auth_token": TOKEN},
            # Only /v1/validate may record findings here (the live watch would see the held
            # proof's spend too, and record it as a finding of its own).
            sweep={"enabled": False},
            watch={"enabled": False},
        )


@pytest.fixture(scope="module")
def web_worker(
    web_settings: Settings, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[WorkerProcess]:
    log = tmp_path_factory.mktemp("web-log") / "worker.log"
    process = WorkerProcess(web_settings, log).start()
    yield process
    process.stop()


async def _in_ledger(worker: WorkerProcess, owner: str, proofs: list[WalletProof]) -> None:
    async def shown() -> bool | None:
        views = [await proof_view(worker.url, owner, p.Y, token=TOKEN) for p in proofs]
        return True if all(v["ledger"] for v in views) else None

    await eventually(shown)


@pytest.mark.stack
@pytest.mark.parametrize("command", ["worker", "sink"])
def test_finding_07_a_web_api_beyond_loopback_without_a_token_refuses_to_start(
    command: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    clear_proofrecon_env(monkeypatch)
    settings = build_test_settings(uuid.uuid4().hex[:10], tmp_path, web={"host": "0.0.0.0"})
    done = subprocess.run(
        [*CLI, command],
        env=process_env(settings),
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode != 0
    assert "PROOFRECON_WEB_AUTH_TOKEN" in done.stderr and "0.0.0.0" in done.stderr


@pytest.mark.stack
async def test_finding_07_validate_records_findings_only_for_proofs_the_ledger_holds(
    web_worker: WorkerProcess, web_settings: Settings, real_scenario: Scenario
) -> None:
    owner = npub()
    held = real_scenario.spent_elsewhere[:1]
    await publish_token(web_settings, web_worker, owner, held, "unspent", wait=False)
    await _in_ledger(web_worker, owner, held)
    made_up = [y_from_secret(uuid.uuid4().hex) for _ in range(3)]
    body = {
        "npub": owner,
        "mint_url": MINT_URL,
        "proofs": [ref(held[0])] + [{"Y": y, "amount": 1, "keyset_id": "00ab"} for y in made_up],
    }
    async with httpx.AsyncClient(base_url=web_worker.url, timeout=10, headers=BEARER) as http:
        answer = (await http.post("/v1/validate", json=body)).json()
    # The answer judges every proof (the made-up ones are "not in the DB")...
    assert answer["recommendation"] == "BLOCK" and answer["has_high_severity"] is True
    assert sorted(d["type"] for d in answer["discrepancies"]) == [
        "DB_UNSPENT_MINT_SPENT",
        *["PROOF_NOT_IN_DB"] * 3,
    ]
    # ...but only the held proof's finding is recorded.
    events = await read_topic(
        web_settings,
        web_settings.topics.discrepancies,
        until=lambda rs: any(r["npub"] == owner for r in rs),
    )
    assert [(e["Y"], e["source"]) for e in events if e["npub"] == owner] == [
        (held[0].Y, "validate")
    ]
    findings = await read_topic(web_settings, web_settings.topics.findings, idle=1.0)
    observed = [p["Y"] for f in findings if f["npub"] == owner for p in f["proofs"]]
    assert observed == [held[0].Y]
    for y in made_up:
        view = await proof_view(web_worker.url, owner, y, token=TOKEN)
        assert view["open_discrepancy"] is None
    held_view = await proof_view(web_worker.url, owner, held[0].Y, token=TOKEN)
    assert held_view["open_discrepancy"] is not None


@pytest.mark.stack
async def test_finding_07_every_endpoint_but_the_probes_needs_the_bearer_token(
    web_worker: WorkerProcess, web_settings: Settings, real_scenario: Scenario
) -> None:
    y = real_scenario.unspent[0].Y
    body = {"npub": npub(), "mint_url": MINT_URL, "proofs": [ref(real_scenario.unspent[0])]}
    closed = [
        ("POST", "/v1/validate"),
        ("GET", f"/v1/proofs/{y}?npub=npub1x"),
        ("GET", "/metrics"),
        ("GET", "/v1/analytics/export/discrepancies?since=1970-01-01"),
        ("GET", "/v1/analytics/hourly"),
        ("GET", "/report"),
    ]
    async with httpx.AsyncClient(base_url=web_worker.url, timeout=10) as http:
        assert (await http.get("/healthz")).status_code == 200
        assert (await http.get("/readyz")).status_code == 200
        for method, path in closed:
            for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": TOKEN}):
                response = await http.request(method, path, json=body, headers=headers)
                assert response.status_code == 401, (method, path, headers)
                assert response.json()["error"] == "UNAUTHORIZED"
        for method, path in closed:
            response = await http.request(method, path, json=body, headers=BEARER)
            assert response.status_code == 200, (method, path, response.text[:200])
        huge = b'{"npub": "' + b"n" * (web_settings.web.max_body_bytes + 1) + b'"}'
        too_big = await http.post("/v1/validate", content=huge, headers=BEARER)
        assert too_big.status_code == 413


@pytest.mark.stack
async def test_finding_07_seventy_validate_calls_leave_the_melt_budget_alone(
    web_worker: WorkerProcess, web_settings: Settings, real_scenario: Scenario
) -> None:
    owner = npub()
    proofs = real_scenario.unspent[:1]
    await publish_token(web_settings, web_worker, owner, proofs, "unspent", wait=False)
    await _in_ledger(web_worker, owner, proofs)
    body = {"npub": owner, "mint_url": MINT_URL, "proofs": [ref(proofs[0])]}
    codes = []
    async with httpx.AsyncClient(base_url=web_worker.url, timeout=10, headers=BEARER) as http:
        for _ in range(70):
            response = await http.post("/v1/validate", json=body)
            assert response.status_code == 200
            codes.append(response.json()["code"])
    # Validate spends its own small share and is refused beyond it...
    assert codes.count("MINT_RATE_LIMITED") >= 60
    # ...so the melt that follows still has its budget.
    async with PreflightClient(web_settings) as client:
        result = await ask(client, melt(owner, proofs))
    assert (result.verdict, result.code) == ("CLEARED", None)


async def _ok(request: web.Request) -> web.Response:
    return web.json_response({"ok": True})


@pytest.mark.parametrize("public", [False, True])
async def test_finding_07_metrics_are_open_only_when_made_public(public: bool) -> None:
    settings = WebSettings(auth_token=TOKEN, metrics_public=public)
    app = web.Application(middlewares=[auth_middleware(settings)])
    for path in ("/metrics", "/healthz", "/v1/validate"):
        app.router.add_get(path, _ok)
    async with TestClient(TestServer(app)) as http:
        assert (await http.get("/metrics")).status == (200 if public else 401)
        assert (await http.get("/healthz")).status == 200
        assert (await http.get("/v1/validate")).status == 401
        assert (await http.get("/v1/validate", headers=BEARER)).status == 200
