"""Finding 11 (medium): each spelling of an allowed mint URL was a mint of its own downstream.

At 7262b21 the allow-list compared normalised URLs but everything after it used the request's
spelling: every host-case variant was a new Prometheus series and a separate mint in ClickHouse
(analytics and hourly rates split), and an answer echoed whatever the request wrote.
"""

from __future__ import annotations

import re

import httpx
import pytest

from devkit.processes import WorkerProcess
from devkit.wallet import Scenario
from streams.core.mint_url import normalise_mint_url
from streams.core.settings import Settings
from tests.conftest import MINT_URL
from tests.safety.conftest import LOCALHOST_MINT
from tests.safety.helpers import answers_to, dumps, eventually, melt_body, produce
from tests.support.pipeline import npub, publish_token

pytestmark = pytest.mark.stack

SPELLINGS = ("http://LocalHost:3338/", "http://LOCALHOST:3338//", "http://lOcAlHoSt:3338")
_MINT_LABEL = re.compile(r'mint_url="([^"]*)"')


def _misspelt(url: str) -> bool:
    """A mint URL not in its one spelling (empty: an invalid request that named none)."""
    return bool(url) and url != normalise_mint_url(url)


async def test_finding_11_mint_url_spellings_are_one_mint_in_answers_metrics_and_clickhouse(
    worker: WorkerProcess, pipeline_settings: Settings, real_scenario: Scenario
) -> None:
    topics = pipeline_settings.topics
    owner = npub()
    proofs = real_scenario.unspent[:1]
    # The wallet spells the mint its own way too.
    await publish_token(
        pipeline_settings, worker, owner, proofs, "unspent", mint_url="http://LOCALHOST:3338/"
    )
    bodies = [melt_body(owner, proofs, mint_url=spelling) for spelling in SPELLINGS]
    # An upper-case scheme breaks the contract; its INVALID_REQUEST answer is still normalised.
    invalid = melt_body(owner, proofs, mint_url=MINT_URL.upper() + "/")
    for body in [*bodies, invalid]:
        await produce(pipeline_settings, topics.melt_requests, dumps(body), key=owner.encode())

    answers = await answers_to(pipeline_settings, {b["request_id"] for b in [*bodies, invalid]})
    for body in bodies:
        answer = answers[body["request_id"]]
        assert (answer["mint_url"], answer["verdict"]) == (LOCALHOST_MINT, "CLEARED"), answer
    refused = answers[invalid["request_id"]]
    assert (refused["code"], refused["mint_url"]) == ("INVALID_REQUEST", MINT_URL)

    async with httpx.AsyncClient(base_url=worker.url, timeout=10) as http:
        metrics = (await http.get("/metrics")).text
        labels = set(_MINT_LABEL.findall(metrics))
        assert LOCALHOST_MINT in labels
        assert {label for label in labels if _misspelt(label)} == set()
        checked = [
            line
            for line in metrics.splitlines()
            if line.startswith("proofrecon_proofs_checked_total{") and "localhost" in line.lower()
        ]
        assert len(checked) == 1, checked

        async def latency_rows() -> list[dict[str, object]] | None:
            reply = await http.get("/v1/analytics/latency", params={"since": "1h"})
            rows: list[dict[str, object]] = reply.json()["rows"] if reply.is_success else []
            ours = [r for r in rows if str(r["mint_url"]).lower().startswith(LOCALHOST_MINT)]
            return rows if sum(int(str(r["answers"])) for r in ours) >= len(bodies) else None

        rows = await eventually(latency_rows, timeout=40, every=1.0)
    mints = {str(row["mint_url"]) for row in rows}
    assert LOCALHOST_MINT in mints
    assert {m for m in mints if _misspelt(m)} == set(), mints
