"""Finding 8 (high): secrets in odd shapes reached the dead-letter topic, the logs and HTTP 400s.

At 7262b21 only values under keys containing "secret" were masked: a Cashu token (a bearer token:
whoever reads it can spend it), tuple or short-key proofs, and a secret used as a JSON key (quoted
back by the contract's error message) were kept verbatim in `recon.dead-letter` (30 days), its
`error` field and the worker's log. The dead-letter record now keeps only known contract fields.
"""

from __future__ import annotations

import base64
import json
import os
import uuid
from typing import Any

import httpx
import pytest

from devkit.processes import WorkerProcess
from devkit.wallet import Scenario
from streams.core.settings import Settings
from tests.conftest import MINT_URL
from tests.safety.helpers import answers_to, dead_letters_of, produce, raw_records
from tests.support.pipeline import npub

pytestmark = pytest.mark.stack

C = "02" + "ab" * 32


def _secret() -> str:
    return uuid.uuid4().hex + uuid.uuid4().hex  # 64 hex characters, like a NUT-00 secret


def _token_v3(secret: str, keyset_id: str) -> str:
    """A NUT-00 V3 token (`cashuA` + base64url JSON) holding one proof with `secret`."""
    proof = {"amount": 8, "id": keyset_id, "secret": secret, "C": C}
    body = json.dumps({"token": [{"mint": MINT_URL, "proofs": [proof]}], "unit": "sat"})
    return "cashuA" + base64.urlsafe_b64encode(body.encode()).decode().rstrip("=")


def _token_v4() -> str:
    """A syntactically plausible V4 token (`cashuB` + base64url CBOR)."""
    return "cashuB" + base64.urlsafe_b64encode(os.urandom(120)).decode().rstrip("=")


async def test_finding_08_secret_shapes_never_reach_dead_letters_answers_logs_or_http(
    worker: WorkerProcess, pipeline_settings: Settings, real_scenario: Scenario
) -> None:
    owner = npub()
    proof = real_scenario.unspent[0]
    valid_ref = {"Y": proof.Y, "amount": proof.amount, "keyset_id": proof.keyset_id}
    secrets = {name: _secret() for name in ("in_token", "as_key", "top_key", "short", "tuple")}
    secrets |= {name: _secret() for name in ("unknown", "nested", "broken", "http")}
    token_a = _token_v3(secrets["in_token"], proof.keyset_id)
    token_b = _token_v4()
    leaks = [*secrets.values(), token_a, token_b, token_a[20:60], token_b[20:60]]

    def request(**fields: Any) -> dict[str, Any]:
        return {
            "request_id": f"leak-{uuid.uuid4().hex}",
            "npub": owner,
            "mint_url": MINT_URL,
            "requested_at": "2026-12-01T00:00:00Z",
            "proofs": [valid_ref],
            **fields,
        }

    bodies: list[dict[str, Any]] = [
        request(memo=f"paid with {token_a}"),  # a V3 token in an unknown field
        request(quote_id=token_b, proofs=[]),  # a V4 token in a known field
        request(proofs={secrets["as_key"]: {"amount": 1, "C": C}}),  # a secret as a key
        request(**{secrets["top_key"]: 1}),  # a secret as a top-level key
        request(proofs=[{"s": secrets["short"], "a": 8, "c": C}]),  # NUT-00 V4 short keys
        request(proofs=[[8, secrets["tuple"], C]]),  # a tuple proof
        request(note=secrets["unknown"]),  # a secret in an unknown field
        request(proofs=[{**valid_ref, "witness": secrets["nested"]}]),  # in a proof's extra field
    ]
    raws = [json.dumps(body).encode() for body in bodies]
    broken_id = f"leak-{uuid.uuid4().hex}"
    raws.append(
        f'{{"request_id": "{broken_id}", "proofs": [{{"secret": "{secrets["broken"]}"'.encode()
    )
    where = set()
    for raw in raws:
        sent = await produce(
            pipeline_settings, pipeline_settings.topics.melt_requests, raw, key=owner.encode()
        )
        where.add((sent.partition, sent.offset))

    topics = pipeline_settings.topics
    parked = await dead_letters_of(pipeline_settings, topics.melt_requests, where)
    assert len(parked) == len(raws)
    ids = {body["request_id"] for body in bodies} | {broken_id}
    answers = await answers_to(pipeline_settings, ids)
    assert {a["code"] for a in answers.values()} == {"INVALID_REQUEST"}

    async with httpx.AsyncClient(base_url=worker.url, timeout=10) as http:
        bad = await http.post(
            "/v1/validate",
            json={"npub": owner, "mint_url": MINT_URL, secrets["http"]: {"amount": 1}},
        )
    assert bad.status_code == 400
    assert "<extra field>" in bad.text

    stored = ""
    for topic in (topics.dead_letter, topics.preflight_results):
        for record in await raw_records(pipeline_settings, topic, idle=1.0):
            stored += ((record.key or b"") + (record.value or b"")).decode("utf-8", "replace")
    places = {"topics": stored, "worker log": worker.log_text(), "HTTP 400": bad.text}
    for place, text in places.items():
        found = [leak[:16] for leak in leaks if leak in text]
        assert not found, f"secrets in the {place}: {found}"
    # The dead letters still say what was wrong, with their request ids kept.
    assert {p["error_kind"] for p in parked} <= {"VALIDATION_ERROR", "DECODE_ERROR"}
    assert sum(body["request_id"] in p["raw"] for p in parked for body in bodies) == len(bodies)
