"""Token-status ingest into the proof table, against a bare Kafka consumer reading the same topic.

    .venv/bin/python -m bench ingest [--quick]
    .venv/bin/python -m bench.bench_ingest [--updates 200000] [--proofs-per-token 5]

Target (README, "Figures"): >= 20,000 proof updates/s per worker.

1. Build realistic `wallet.token-status` events before any timing: tokens of `--proofs-per-token`
   proofs spread over many npubs, valid Ys from random secrets (sent as `Y`, so hashing is not
   measured as ingest), 80 % new tokens and 20 % later versions of earlier ones (status changes).
2. Produce them all to a fresh topic.
3. Baseline: a bare aiokafka consumer reads the whole topic; its rate counts the proofs the
   records carry, from its first fetch to the last record. It runs before and after the worker and
   the mean is used, because the shared machine's load drifts.
4. Pipeline: a worker (sweep off) starts on the filled topic; its ledger counter
   (`proofrecon_ledger_proof_updates_total` on /metrics) is polled and the rate taken between the
   first sample above zero and the first at the total, so start-up is not counted against it.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import time
import uuid
from dataclasses import dataclass
from typing import Any

import httpx
from aiokafka import AIOKafkaConsumer

from bench.common import (
    LEDGER_COUNTER,
    BenchResult,
    BenchWorker,
    add_set_option,
    at_least,
    bench_settings,
    check_stack,
    cpu_seconds,
    delete_run_topics,
    format_table,
    machine,
    metric_total,
    new_run_id,
    npub,
    produce_all,
    ratio,
    recorded,
    say,
    scratch_dir,
    set_overrides,
    token_event,
    write_json,
)
from streams.core.cashu import y_from_secret
from streams.core.kafka import client_kwargs, ensure_topics
from streams.core.settings import Settings

TARGET_PER_S = 20_000
NPUBS = 2_000
UPDATE_SHARE = 0.2  # events that re-publish an earlier token with a new status and version
POLL_S = 0.25
MINT_URL = "https://mint.example.com"  # the ledger never calls the mint: any URL will do


@dataclass(frozen=True)
class Workload:
    records: list[tuple[bytes, bytes]]
    proof_updates: int
    bytes_total: int
    sample: list[tuple[str, str]]  # (npub, Y) pairs to read back after ingest


def build_workload(updates: int, per_token: int, rng: random.Random) -> Workload:
    """Token events carrying `updates` proof updates in all (rounded down to whole tokens)."""
    owners = [npub() for _ in range(NPUBS)]
    issued: list[tuple[str, str, list[dict[str, Any]]]] = []
    records: list[tuple[bytes, bytes]] = []
    for _ in range(updates // per_token):
        if issued and rng.random() < UPDATE_SHARE:
            owner, token_id, proofs = rng.choice(issued)
            event = token_event(owner, token_id, MINT_URL, proofs, status="spent", version=2)
        else:
            owner, token_id = rng.choice(owners), f"tok-{uuid.uuid4()}"
            proofs = [_proof(rng) for _ in range(per_token)]
            issued.append((owner, token_id, proofs))
            event = token_event(owner, token_id, MINT_URL, proofs)
        records.append((owner.encode(), event))
    sample = [(owner, proofs[0]["Y"]) for owner, _, proofs in rng.sample(issued, 5)]
    total_bytes = sum(len(v) for _, v in records)
    return Workload(records, len(records) * per_token, total_bytes, sample)


def _proof(rng: random.Random) -> dict[str, Any]:
    secret = os.urandom(32).hex()  # Nutshell's secrets are 64 hex characters
    return {
        "Y": y_from_secret(secret),
        "amount": 2 ** rng.randrange(0, 12),
        "keyset_id": "00a1b2c3d4e5f607",
    }


async def raw_consume_rate(settings: Settings, topic: str, records: int, per_token: int) -> float:
    """Proofs/s carried by the records a bare consumer reads, from its first fetch to the last
    record (one fetch can bring thousands of records, so "first record" would be too late)."""
    consumer = AIOKafkaConsumer(
        topic,
        **client_kwargs(settings.kafka),
        group_id=None,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await consumer.start()
    seen = 0
    first = time.perf_counter()
    deadline = time.monotonic() + 300
    try:
        while seen < records and time.monotonic() < deadline:
            batch = await consumer.getmany(timeout_ms=1000)
            seen += sum(len(items) for items in batch.values())
    finally:
        last = time.perf_counter()
        await consumer.stop()
    return seen * per_token / (last - first)


@dataclass
class IngestRun:
    rate: float
    cpu_us_per_update: float  # the worker's CPU time per update: steadier than the rate
    samples: list[tuple[float, float, float]]  # (monotonic, counter, worker CPU seconds)
    elapsed_s: float


async def ledger_rate(worker: BenchWorker, total: int, timeout: float) -> IngestRun:
    """Poll the worker's ledger counter until it reaches `total`; rate from first to last."""
    assert worker.proc is not None
    samples: list[tuple[float, float, float]] = []
    deadline = time.monotonic() + timeout
    async with httpx.AsyncClient(timeout=5) as http:
        while time.monotonic() < deadline:
            value = await metric_total(http, worker.url, LEDGER_COUNTER)
            if value:
                samples.append((time.monotonic(), value, cpu_seconds(worker.pid)))
                if value >= total:
                    break
            await asyncio.sleep(POLL_S)
    if not samples or samples[-1][1] < total:
        got = samples[-1][1] if samples else 0
        raise TimeoutError(f"the ledger applied {got} of {total} updates in {timeout} s")
    (t0, c0, cpu0), (t1, c1, cpu1) = samples[0], samples[-1]
    return IngestRun((c1 - c0) / (t1 - t0), (cpu1 - cpu0) * 1e6 / (c1 - c0), samples, t1 - t0)


async def read_back(worker: BenchWorker, sample: list[tuple[str, str]]) -> int:
    """How many sampled proofs the ledger shows (a cheap check that the figure is real work)."""
    found = 0
    async with httpx.AsyncClient(base_url=worker.url, timeout=5) as http:
        for owner, y in sample:
            view = (await http.get(f"/v1/proofs/{y}", params={"npub": owner})).json()
            found += view.get("ledger") is not None
    return found


async def measure(updates: int, per_token: int, seed: int = 7) -> dict[str, Any]:
    await check_stack()
    run_id = new_run_id()
    say(f"ingest: building {updates:,} proof updates ...")
    work = build_workload(updates, per_token, random.Random(seed))
    with scratch_dir("ingest") as tmp:
        settings = bench_settings(run_id, tmp / "data")
        topic = settings.topics.token_status
        try:
            await ensure_topics(settings)
            say(f"ingest: producing {len(work.records):,} events ({work.bytes_total / 1e6:.1f} MB)")
            await produce_all(settings, topic, work.records)
            n = len(work.records)
            before = await raw_consume_rate(settings, topic, n, per_token)
            say(f"ingest: bare consumer {before:,.0f} proofs/s; starting the worker")
            worker = BenchWorker(settings, "ingest")
            await asyncio.to_thread(worker.start)
            try:
                run = await ledger_rate(worker, work.proof_updates, max(300.0, updates / 500))
                found = await read_back(worker, work.sample)
                dead = await _dead_letters(worker)
            finally:
                await asyncio.to_thread(worker.stop)
            after = await raw_consume_rate(settings, topic, n, per_token)
        finally:
            await delete_run_topics(settings, run_id)
    baseline = (before + after) / 2
    return {
        "bench": "ingest",
        "started_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": machine(),
        "params": {"updates": work.proof_updates, "events": n, "per_token": per_token},
        "event_bytes_avg": round(work.bytes_total / n),
        "ledger_updates_per_s": round(run.rate),
        "ledger_elapsed_s": round(run.elapsed_s, 2),
        "worker_cpu_us_per_update": round(run.cpu_us_per_update, 1),
        # What one fully available core would do at that CPU cost (the target is per worker).
        "updates_per_cpu_s": round(1e6 / run.cpu_us_per_update),
        "raw_consume_proofs_per_s": {"before": round(before), "after": round(after)},
        "baseline_proofs_per_s": round(baseline),
        "ratio_ledger_over_raw": ratio(run.rate, baseline),
        "sampled_proofs_found": f"{found}/{len(work.sample)}",
        "dead_letters": dead,
        "samples": [(round(t - run.samples[0][0], 2), c, round(u, 2)) for t, c, u in run.samples],
    }


async def _dead_letters(worker: BenchWorker) -> float:
    async with httpx.AsyncClient(timeout=5) as http:
        return await metric_total(http, worker.url, "proofrecon_dead_letters_total") or 0.0


def to_result(data: dict[str, Any]) -> BenchResult:
    value, baseline = float(data["ledger_updates_per_s"]), float(data["baseline_proofs_per_s"])
    details = {k: v for k, v in data.items() if k != "samples"}
    return BenchResult(
        name="ingest",
        metric="proof updates/s into the ledger (1 worker)",
        value=value,
        unit="/s",
        baseline=baseline,
        ratio=ratio(value, baseline),
        target=f">= {TARGET_PER_S:,} /s",
        passed=at_least(value, TARGET_PER_S) and data["dead_letters"] == 0,
        details={**details, "baseline_is": "bare aiokafka consumer, same topic (raw consume)"},
    )


async def run(quick: bool) -> BenchResult:
    data = await measure(50_000 if quick else 200_000, 5)
    data["quick"] = quick
    return recorded("ingest", data, to_result)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--updates", type=int, default=200_000)
    parser.add_argument("--proofs-per-token", type=int, default=5)
    add_set_option(parser)
    args = parser.parse_args()
    set_overrides(args.set)
    data = asyncio.run(measure(args.updates, args.proofs_per_token))
    out = write_json("bench_ingest", data)
    print(format_table([to_result(data)]))
    print(json.dumps({k: v for k, v in data.items() if k != "samples"}, indent=2))
    print(f"written to {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
