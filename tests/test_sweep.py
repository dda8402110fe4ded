"""The sweep re-checks unspent and pending proofs on its own and reports with `source: sweep`."""

from __future__ import annotations

from typing import Any

import pytest

from devkit.processes import WorkerProcess, fixes_of, read_topic
from devkit.wallet import Scenario
from streams.core.settings import Settings
from streams.recon.sweep_index import SweepIndex
from tests.support.pipeline import npub, publish_token


@pytest.fixture(scope="module")
def pipeline_overrides() -> dict[str, Any]:
    return {"sweep": {"enabled": True, "interval_s": 0.5, "min_age_s": 0.0}}


@pytest.mark.stack
async def test_sweep_finds_proofs_spent_behind_the_wallets_back(
    worker: WorkerProcess, pipeline_settings: Settings, real_scenario: Scenario
) -> None:
    owner = npub()
    spent = real_scenario.spent_elsewhere[:2]
    clean = real_scenario.unspent[:2]
    token = await publish_token(pipeline_settings, worker, owner, spent + clean, "unspent")
    events = await read_topic(
        pipeline_settings,
        pipeline_settings.topics.discrepancies,
        until=lambda rs: sum(r["npub"] == owner for r in rs) >= 2,
        timeout=30,
    )
    mine = [e for e in events if e["npub"] == owner]
    assert {(e["Y"], e["type"], e["source"]) for e in mine} == {
        (p.Y, "DB_UNSPENT_MINT_SPENT", "sweep") for p in spent
    }
    corrections = await read_topic(
        pipeline_settings,
        pipeline_settings.topics.corrections,
        until=lambda rs: any(r["npub"] == owner for r in rs),
    )
    (fix,) = fixes_of(corrections, owner)
    assert fix["token_id"] == token and sorted(fix["Ys"]) == sorted(p.Y for p in spent)
    checks = await read_topic(
        pipeline_settings,
        pipeline_settings.topics.proof_checks,
        until=lambda rs: any(r["source"] == "sweep" for r in rs),
    )
    assert all(c["proofs_checked"] > 0 for c in checks if c["source"] == "sweep")
    # Later rounds see the same mismatch but do not emit it again while it is open.
    again = await read_topic(pipeline_settings, pipeline_settings.topics.discrepancies, idle=3)
    assert len([e for e in again if e["npub"] == owner]) == 2


def test_index_orders_by_last_check_and_forgets() -> None:
    index = SweepIndex()
    for i in range(5):
        index.track("n", f"y{i}", "http://m")
    index.checked("n", ["y0", "y1"], at=100.0)
    assert index.due("http://m", 10, min_age_s=50, now=120.0) == [
        ("n", "y4"),
        ("n", "y3"),
        ("n", "y2"),
    ]
    assert index.due("http://m", 10, min_age_s=10, now=120.0)[-2:] == [("n", "y0"), ("n", "y1")]
    index.forget("n", "y4")
    index.track("n", "y2", "http://other")
    assert ("n", "y4") not in index.due("http://m", 10, 0, now=200.0)
    assert index.due("http://other", 10, 0, now=200.0) == [("n", "y2")]
    assert len(index) == 4 and sorted(index.mints()) == ["http://m", "http://other"]
