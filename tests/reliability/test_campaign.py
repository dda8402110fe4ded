"""The fault campaign, in the manner of Kafka's own EOS system test: steady load of every melt class
and token-status churn through 3 workers on a 3-node cluster, faults one after another, then a
verifier that reads everything back and checks that nothing was lost, doubled or contradicted.

`make test` runs the reduced campaign (one fault of each kind that matters most, ≤ 5 minutes);
`make test-reliability` the full one (PROOFRECON_RELIABILITY_SCALE=full, ≤ 30 minutes):
kill -9 of a random worker 5 times, a SIGSTOPped zombie, kill -9 of a Kafka node, a rolling
restart, the sink down for 60 s, and the mint down, slow, rate limiting and answering garbage.

The cluster is the local stack's (`make stack-up KAFKA_NODES=3`) when it runs, else a private one
(see devkit/cluster.py). Its table lands in tests/artifacts/reliability-<scale>-<time>.json.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from devkit.cluster import replication
from devkit.processes import process_env
from devkit.verifier import Evidence, FaultWindow, Report, evidence_to_json, verify
from devkit.wallet import CashuWallet
from streams.core.cashu import is_valid_y
from tests.reliability import faults
from tests.reliability.report import markdown, phase_row, write_artifact
from tests.reliability.rig import Rig, mint_states, run_topics
from tests.reliability.scale import chosen

SCALE = chosen()
# aiokafka logs every refused connection while a Kafka node is down: thousands of lines.
logging.getLogger("aiokafka").setLevel(logging.CRITICAL)
pytestmark = [pytest.mark.stack, pytest.mark.slow, pytest.mark.timeout(SCALE.timeout_s)]


@pytest.fixture
def rig(tmp_path: Path, mint_url: str) -> Iterator[Rig]:
    rig = Rig(SCALE, tmp_path)
    try:
        yield rig
    finally:
        rig.close()


async def _supervise(rig: Rig, stop: asyncio.Event) -> None:
    assert rig.fleet is not None
    while not stop.is_set():
        rig.fleet.supervise()
        await asyncio.sleep(1.0)


async def _run_faults(rig: Rig, load: Any, rng: random.Random) -> list[faults.Phase]:
    phases = [await faults.kill_workers(rig, load, rng)]
    await asyncio.sleep(SCALE.settle_s)
    phases.append(await faults.zombie(rig, load, rng))
    phases.append(await faults.kill_kafka_node(rig, load, rng))
    await asyncio.sleep(SCALE.settle_s)
    if SCALE.rolling_restart:
        phases.append(await faults.rolling_restart(rig, load, rng))
        await asyncio.sleep(SCALE.settle_s)
    phases.append(await faults.sink_outage(rig, load, rng))
    await asyncio.sleep(SCALE.settle_s)
    phases += await faults.mint_faults(rig, load, rng)
    return phases


async def _evidence(rig: Rig, mint_url: str, phases: list[faults.Phase]) -> Evidence:
    assert rig.settings and rig.plan and rig.proxy and rig.pending_mint and rig.fleet
    ys = sorted({y for m in rig.book.melts.values() for y in m.ys if is_valid_y(y)})
    pending = {
        p.Y for h in rig.plan.holdings for p in h.proofs if h.mint_url == rig.pending_mint.url
    }
    truth = await asyncio.to_thread(mint_states, mint_url, [y for y in ys if y not in pending])
    truth.update(await asyncio.to_thread(mint_states, rig.pending_mint.url, sorted(pending)))
    # The pipeline may block on unknown truth until it cleared again after each fault.
    recovery = [p.figures["recovery_s"] for p in phases if p.fault.startswith("mint ")]
    windows = []
    for window, took in zip(rig.proxy.status()["windows"], recovery, strict=True):
        end = window["ended_at"] or time.time()
        windows.append(FaultWindow(window["fault"], window["started_at"], end, end + took))
    return Evidence(
        rig.sink.settings if rig.sink else rig.settings,
        rig.book.melts,
        truth,
        windows,
        rig.proxy.url,
        rig.fleet.urls,
    )


async def _drain(rig: Rig) -> None:
    """Every request answered and every input committed, then the sink caught up and stopped."""
    assert rig.settings is not None and rig.sink is not None
    for _ in range(240):
        if not rig.book.unanswered():
            break
        await asyncio.sleep(0.5)
    # Each stage says where it is, so a run cut short by its timeout shows what was behind.
    say(f"drain: {len(rig.book.unanswered())} requests unanswered; waiting for the commits")
    group, t = rig.settings.kafka.app_id, rig.settings.topics
    await rig.wait_consumed(group, [t.melt_requests], timeout=120)
    say("drain: melt requests committed; waiting for the ledger")
    await rig.wait_ledger_caught_up(timeout=120)
    await asyncio.sleep(3.0)  # the findings and alerts the last inputs caused
    say("drain: ledger caught up; waiting for the sink")
    await rig.wait_sink_caught_up()
    await asyncio.to_thread(rig.sink.stop)


def say(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] campaign: {message}", flush=True)


async def campaign(rig: Rig, mint_url: str) -> tuple[Report, list[faults.Phase]]:
    supply = await asyncio.to_thread(rig.start_infrastructure, mint_url)
    say(f"cluster {'(private)' if rig.cluster and rig.cluster.private else ''} and mints up")
    await asyncio.to_thread(rig.start_services, supply)
    say("3 workers and the sink ready")
    rng = random.Random(rig.run)
    stop, reader_stop = asyncio.Event(), asyncio.Event()
    spender = CashuWallet(mint_url, rig.root / "spender-wallet")
    async with rig.load(spender) as load:
        await load.register_holdings()
        reader = asyncio.create_task(load.read_answers(reader_stop))
        await rig.wait_ledger_ready()
        jobs = (load.melts(stop), load.churn(stop), _supervise(rig, reader_stop))
        background = [asyncio.create_task(job) for job in jobs]
        try:
            await asyncio.sleep(SCALE.warmup_s)
            phases = await _run_faults(rig, load, rng)
            await asyncio.sleep(SCALE.settle_s)
        finally:
            stop.set()
        say(f"faults done, {len(rig.book.melts)} melts sent; draining")
        await _drain(rig)
        reader_stop.set()
        for task in [*background, reader]:
            with contextlib.suppress(Exception):
                await task
    assert rig.cluster is not None
    topics = await run_topics(rig.settings, rig.cluster.bootstrap)
    rig.replication = await replication(rig.cluster.bootstrap, topics)
    evidence = await _evidence(rig, mint_url, phases)
    assert rig.settings is not None
    (rig.root / "evidence.json").write_text(
        json.dumps(evidence_to_json(evidence, process_env(evidence.settings)), default=str)
    )
    say("drained; verifying")
    report = await verify(evidence)
    return report, phases


async def test_nothing_lost_doubled_or_contradicted_under_faults(
    rig: Rig, mint_url: str, artifacts_dir: Path
) -> None:
    started = time.monotonic()
    report, phases = await campaign(rig, mint_url)
    duplicates = report.figures.get("clickhouse", {}).get("duplicate_rows")
    rows = [phase_row(p, report, rig.book.melts, SCALE.token_events_per_s) for p in phases]
    assert rig.fleet is not None
    exits = {m.index: m.unplanned_exits for m in rig.fleet.members}
    data = {
        "scale": SCALE.name,
        "elapsed_s": round(time.monotonic() - started, 1),
        "setup": rig.timings,
        "phases": rows,
        "figures": report.figures,
        "worker_unplanned_exits": exits,
        "invariants": report.text().splitlines(),
        "load": rig.book.counts(),
        "replication": rig.replication,
    }
    out = write_artifact(artifacts_dir, SCALE.name, data)
    print(f"\n{markdown(rows, duplicates)}\n\n{report.text()}\n(written to {out})")
    # Every topic of the run, Faust's changelogs included: 3 replicas, 2 of them needed for a write.
    unreplicated = {t: r for t, r in rig.replication.items() if r != (3, 2)}
    assert len(rig.replication) >= 15 and not unreplicated, unreplicated
    assert report.holds, report.text()
