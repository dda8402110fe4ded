"""Finding 16 (medium): `/v1/validate` judged against this worker's partitions only.

At 7262b21, with several workers, an npub whose partition another worker owned had no ledger here:
every proof read as "not in the DB" and validate answered `valid: true, PROCEED` where the owner
would say HIGH / BLOCK. Now only the owner judges; another worker answers 421 naming the owner.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Iterator

import httpx
import pytest

from devkit.processes import WorkerProcess
from devkit.wallet import Scenario
from streams.core.settings import Settings
from tests.conftest import MINT_URL, build_test_settings, clear_proofrecon_env
from tests.safety.helpers import proof_view
from tests.support.pipeline import npub, publish_token, ref

pytestmark = [pytest.mark.stack, pytest.mark.timeout(240)]


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[WorkerProcess]]:
    run_id = uuid.uuid4().hex[:10]
    workers = []
    with pytest.MonkeyPatch.context() as mp:
        clear_proofrecon_env(mp)
        for name in ("a", "b"):
            root = tmp_path_factory.mktemp(f"pair-{name}")
            settings = build_test_settings(
                run_id,
                root / "data",
                sweep={"enabled": False},
                clickhouse={"sink_enabled": False},
                alerts={"enabled": False},
            )
            workers.append(WorkerProcess(settings, root / "worker.log"))
    try:
        for worker in workers:
            worker.launch()
        for worker in workers:
            worker.wait_ready()
        yield workers
    finally:
        for worker in workers:
            worker.stop()


async def test_finding_16_validate_on_a_worker_not_owning_the_npub_names_the_owner(
    pair: list[WorkerProcess], real_scenario: Scenario
) -> None:
    settings: Settings = pair[0].settings
    owner_npub = npub()
    spent = real_scenario.spent_elsewhere[:1]
    await publish_token(settings, pair[0], owner_npub, spent, "unspent", wait=False)

    # Whichever worker holds the npub's partition shows its ledger; the other has none.
    deadline = time.monotonic() + 60
    while True:
        views = [await proof_view(w.url, owner_npub, spent[0].Y) for w in pair]
        holders = [w for w, view in zip(pair, views, strict=True) if view["ledger"]]
        if len(holders) == 1:
            break
        assert time.monotonic() < deadline, f"{len(holders)} workers hold the npub"
        await asyncio.sleep(0.5)
    (owner,) = holders
    (other,) = [w for w in pair if w is not owner]

    body = {"npub": owner_npub, "mint_url": MINT_URL, "proofs": [ref(spent[0])]}
    async with httpx.AsyncClient(timeout=10) as http:
        elsewhere = await http.post(f"{other.url}/v1/validate", json=body)
        assert elsewhere.status_code == 421, elsewhere.text
        assert elsewhere.json()["error"] == "NOT_OWNER"
        assert elsewhere.json()["owner"].rstrip("/") == owner.url
        judged = await http.post(f"{owner.url}/v1/validate", json=body)
    assert judged.status_code == 200
    answer = judged.json()
    assert (answer["recommendation"], answer["has_high_severity"]) == ("BLOCK", True)
