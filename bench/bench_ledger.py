"""The ledger at scale: the proof index's bytes per proof, the worker's memory with a million
proofs, and how soon a worker holding them is ready after a start.

    .venv/bin/python -m bench ledger [--quick]
    .venv/bin/python -m bench.bench_ledger [--proofs 1000000]

Targets (README, "Figures"): <= 100 bytes per proof in the index; ready <= 20 s after a start with
1,000,000 proofs.

1. `--proofs` proofs in tokens of 5 over 2,000 npubs (valid Ys, all unspent), published to a fresh
   token-status topic.
2. Index: the same rows built into a `ProofIndex` in this process under tracemalloc, against the
   dict the index used to be (`npub|Y` -> token id), built from the same rows.
3. Worker: started empty (its resident memory and its start-to-ready time are the baselines),
   then it ingests the topic; its resident memory (VmRSS) is read once the ledger holds every
   proof.
4. Restart: the worker is stopped and started again on its data directory; start-to-ready
   (`/readyz`: tables recovered, indexes rebuilt) is the figure. With `--fresh` (not in make
   bench: over a minute), then a fresh worker of the same
   app on an empty data directory (a new machine: the tokens table replayed from its changelog),
   reported beside it. A sampled proof is read back after each start.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import time
import tracemalloc
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
from coincurve import PublicKey

from bench.common import (
    LEDGER_COUNTER,
    BenchResult,
    BenchWorker,
    add_set_option,
    at_most,
    bench_settings,
    check_stack,
    delete_run_topics,
    format_table,
    machine,
    new_run_id,
    produce_all,
    ratio,
    recorded,
    say,
    scratch_dir,
    set_overrides,
    token_event,
    wait_metric,
    write_json,
)
from streams.core.domain import TokenStatus
from streams.core.kafka import ensure_topics
from streams.core.settings import Settings
from streams.recon.ledger import ProofIndex, TokenRecord, proof_key, token_key

TARGET_BYTES = 100.0
TARGET_READY_S = 20.0
PER_TOKEN = 5
NPUBS = 2_000
MINT_URL = "https://mint.example.com"

Token = tuple[str, str, list[str]]  # npub, token id, Ys


def random_ys(count: int, rng: random.Random) -> list[str]:
    """Valid Ys, cheaply: random x coordinates kept when they are on the curve (about half)."""
    ys: list[str] = []
    while len(ys) < count:
        candidate = b"\x02" + rng.randbytes(32)
        try:
            PublicKey(candidate)
        except ValueError:
            continue
        ys.append(candidate.hex())
    return ys


def build_tokens(proofs: int, rng: random.Random) -> list[Token]:
    owners = [f"npub1{rng.randbytes(29).hex()}" for _ in range(NPUBS)]
    ys = random_ys(proofs, rng)
    return [
        (owners[i % NPUBS], f"tok-{i:09d}-{rng.randbytes(8).hex()}", ys[at : at + PER_TOKEN])
        for i, at in enumerate(range(0, proofs - PER_TOKEN + 1, PER_TOKEN))
    ]


def records(tokens: list[Token]) -> Iterator[tuple[bytes, bytes]]:
    for owner, token_id, ys in tokens:
        proofs = [{"Y": y, "amount": 8, "keyset_id": "00a1b2c3d4e5f607"} for y in ys]
        yield owner.encode(), token_event(owner, token_id, MINT_URL, proofs)


def rows(tokens: list[Token]) -> Iterator[tuple[str, dict[str, Any]]]:
    for seq, (owner, token_id, ys) in enumerate(tokens):
        proofs = tuple((y, 8, "00a1b2c3d4e5f607") for y in ys)
        at = "2026-01-01T00:00:00+00:00"
        row = TokenRecord(1, TokenStatus.UNSPENT, MINT_URL, at, proofs, seq)
        yield token_key(owner, token_id), row.to_dict()


def index_bytes(tokens: list[Token]) -> dict[str, float]:
    """Bytes per proof of the proof index, and of the dict it replaced, built from the same rows."""
    table = list(rows(tokens))
    proofs = sum(len(ys) for _, _, ys in tokens)
    tracemalloc.start()
    try:
        index = ProofIndex()
        index.rebuild(table)
        compact, peak = tracemalloc.get_traced_memory()
        assert len(index) == proofs
        del index
        tracemalloc.reset_peak()
        before, _ = tracemalloc.get_traced_memory()
        plain = {proof_key(o, y): t for o, t, ys in tokens for y in ys}
        after, _ = tracemalloc.get_traced_memory()
        assert len(plain) == proofs
    finally:
        tracemalloc.stop()
    return {
        "index_bytes_per_proof": round(compact / proofs, 1),
        "index_peak_bytes_per_proof": round(peak / proofs, 1),
        "dict_bytes_per_proof": round((after - before) / proofs, 1),
    }


def rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS")


def timed_start(worker: BenchWorker) -> float:
    """Seconds from launching the worker to its /readyz answering 200."""
    started = time.monotonic()
    worker.start(timeout=600)
    return time.monotonic() - started


def found(worker: BenchWorker, sample: list[tuple[str, str]]) -> int:
    hits = 0
    with httpx.Client(base_url=worker.url, timeout=10) as http:
        for owner, y in sample:
            view = http.get(f"/v1/proofs/{y}", params={"npub": owner}).json()
            hits += view.get("ledger") is not None
    return hits


async def measure(proofs: int, seed: int = 11, *, fresh: bool = False) -> dict[str, Any]:
    await check_stack()
    rng = random.Random(seed)
    say(f"ledger: building {proofs:,} proofs")
    tokens = build_tokens(proofs, rng)
    total = len(tokens) * PER_TOKEN
    sample = [(owner, ys[0]) for owner, _, ys in rng.sample(tokens, 5)]
    say("ledger: the index's bytes per proof")
    memory = index_bytes(tokens)
    run_id = new_run_id()
    with scratch_dir("ledger") as tmp:
        settings = bench_settings(run_id, tmp / "data")
        try:
            await ensure_topics(settings)
            data = await _worker_phases(settings, tmp, tokens, total, sample, fresh=fresh)
        finally:
            await delete_run_topics(settings, run_id)
    return {
        "bench": "ledger",
        "started_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": machine(),
        "params": {"proofs": total, "tokens": len(tokens), "npubs": NPUBS},
        **memory,
        **data,
    }


async def _worker_phases(
    settings: Settings,
    tmp: Path,
    tokens: list[Token],
    total: int,
    sample: list[tuple[str, str]],
    *,
    fresh: bool,
) -> dict[str, Any]:
    worker = BenchWorker(settings, "ledger")
    empty_ready = await asyncio.to_thread(timed_start, worker)
    assert worker.proc is not None
    await asyncio.sleep(2)
    empty_rss = rss_bytes(worker.pid)
    try:
        say(f"ledger: publishing {len(tokens):,} tokens")
        await produce_all(settings, settings.topics.token_status, records(tokens))
        started = time.monotonic()
        await wait_metric(worker.url, LEDGER_COUNTER, total, timeout=900)
        ingest_s = time.monotonic() - started
        await asyncio.sleep(3)  # let the sweep and watch indexes settle
        full_rss = rss_bytes(worker.pid)
    finally:
        await asyncio.to_thread(worker.stop)
    say("ledger: restart on the same data directory")
    restart_ready = await asyncio.to_thread(timed_start, worker)
    try:
        restart_found = await asyncio.to_thread(found, worker, sample)
        assert worker.proc is not None
        restart_rss = rss_bytes(worker.pid)
    finally:
        await asyncio.to_thread(worker.stop)
    replay = await _fresh_worker(settings, tmp, sample) if fresh else {}
    return {
        "empty_ready_s": round(empty_ready, 2),
        "restart_ready_s": round(restart_ready, 2),
        "empty_rss_mib": round(empty_rss / 2**20, 1),
        "full_rss_mib": round(full_rss / 2**20, 1),
        "restart_rss_mib": round(restart_rss / 2**20, 1),
        "rss_bytes_per_proof": round((full_rss - empty_rss) / total, 1),
        "ingest_s": round(ingest_s, 1),
        "ingest_proofs_per_s": round(total / ingest_s),
        "sampled_found": {"restart": f"{restart_found}/5", **replay.pop("found", {})},
        **replay,
    }


async def _fresh_worker(
    settings: Settings, tmp: Path, sample: list[tuple[str, str]]
) -> dict[str, Any]:
    """A fresh worker of the same app on an empty data dir: its tables replayed from the
    changelogs (a new machine). `--fresh` only: over a minute that make bench cannot spare."""
    say("ledger: a fresh worker of the same app (changelog replay)")
    fresh = BenchWorker(settings.model_copy(update={"data_dir": tmp / "fresh"}), "ledger-fresh")
    fresh_ready = await asyncio.to_thread(timed_start, fresh)
    try:
        fresh_found = await asyncio.to_thread(found, fresh, sample)
    finally:
        await asyncio.to_thread(fresh.stop)
    return {"fresh_ready_s": round(fresh_ready, 2), "found": {"fresh": f"{fresh_found}/5"}}


def to_result(data: dict[str, Any]) -> BenchResult:
    proofs = data["params"]["proofs"]
    complete = all(v == "5/5" for v in data["sampled_found"].values())
    ready = at_most(data["restart_ready_s"], TARGET_READY_S) and complete
    rows_: list[BenchResult] = [
        BenchResult(
            "ledger", f"worker ready after a restart, {proofs:,} proofs", data["restart_ready_s"],
            "s", data["empty_ready_s"], ratio(data["restart_ready_s"], data["empty_ready_s"]),
            f"<= {TARGET_READY_S:g} s", ready,
        ),
        BenchResult(
            "ledger", f"worker RSS with {proofs:,} proofs", data["full_rss_mib"], "MiB",
            data["empty_rss_mib"], ratio(data["full_rss_mib"], data["empty_rss_mib"]), "-", None,
        ),
    ]  # fmt: skip
    if "fresh_ready_s" in data:
        rows_.insert(1, BenchResult(
            "ledger", f"fresh worker ready (changelog replay), {proofs:,} proofs",
            data["fresh_ready_s"], "s", data["empty_ready_s"],
            ratio(data["fresh_ready_s"], data["empty_ready_s"]), "-", None,
        ))  # fmt: skip
    main = BenchResult(
        name="ledger",
        metric="proof index, bytes per proof",
        value=data["index_bytes_per_proof"],
        unit="B",
        baseline=data["dict_bytes_per_proof"],
        ratio=ratio(data["index_bytes_per_proof"], data["dict_bytes_per_proof"]),
        target=f"<= {TARGET_BYTES:g} B",
        passed=at_most(data["index_bytes_per_proof"], TARGET_BYTES),
        details={**data, "baseline_is": "dict npub|Y -> token id (the index before); empty worker"},
        more=rows_,
    )
    return main


async def run(quick: bool) -> BenchResult:
    data = await measure(200_000 if quick else 1_000_000)
    data["quick"] = quick
    return recorded("ledger", data, to_result)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--proofs", type=int, default=1_000_000)
    parser.add_argument(
        "--fresh", action="store_true", help="also a fresh worker replaying the changelogs"
    )
    add_set_option(parser)
    args = parser.parse_args()
    set_overrides(args.set)
    data = asyncio.run(measure(args.proofs, fresh=args.fresh))
    out = write_json("bench_ledger", data)
    print(format_table([to_result(data)]))
    print(json.dumps(data, indent=2))
    print(f"written to {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
