"""What adding a worker buys: melts/s and ledger ingest with 1, 2 and 3 workers of one group on the
3-node cluster, and how much CPU each process used meanwhile.

    .venv/bin/python -m bench scaling [--quick]
    .venv/bin/python -m bench.bench_scaling [--workers 1,2,3] [--melts 2000] [--tokens 2000]

The cluster is the stack's (`make stack-up KAFKA_NODES=3`) when it runs, else a private one
(devkit/cluster.py). For each group size, a fresh group (topics RF 3, min ISR 2, 6 partitions,
the sink off) is started; then, each as fast as one producer sends it:

- melts: `--melts` melt requests of real unspent proofs recorded in the ledger (every one is
  checked at the stack's mint, which does not rate-limit 127.0.0.1): melts/s is the count over the
  time from the first send to the last answer read back;
- ingest: `--tokens` token-status events of 5 new proofs each: proof updates/s is the count over
  the time from the first send until the workers' ledgers applied them all.

CPU: seconds used by each worker, each Kafka node and the mint during each measurement, divided
by its wall time (cores). The load generator runs on the same machine and is counted too.

Restart: with 3 workers and melts at 30/s, each worker in turn (only the first without static
membership) gets kill -9 and is started again
at once; reported are its start -> ready, and start -> the backlog answered (every request sent
between the kill and its readiness), and whether the group rebalanced, with static group
membership (PROOFRECON_KAFKA_INSTANCE_ID per worker) and without (the restarted worker then waits
for the dead member's session to expire, 10 s, and a rebalance). With static membership the group
still rebalances when the restarted worker was its leader: aiokafka speaks JoinGroup v5, and a
broker rebalances a group whose static leader rejoins with a version older than 9 (KIP-814).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import secrets
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
from aiokafka import AIOKafkaConsumer

from bench.common import (
    LEDGER_COUNTER,
    STACK_MINT,
    BenchResult,
    Token,
    bench_settings,
    check_stack,
    format_table,
    machine,
    melt_request,
    metric_total,
    new_run_id,
    producer,
    proof_ref,
    real_scenario,
    recorded,
    say,
    scratch_dir,
    token_event,
    tokens_of,
    write_json,
)
from devkit.cluster import KafkaCluster, WorkerFleet, member_settings, process_cpu_seconds
from streams.core.cashu import y_from_secret
from streams.core.kafka import client_kwargs, delete_topics
from streams.core.settings import Settings

PROOFS_PER_TOKEN = 5
LIFTED_PACING = {"requests_per_minute": 60_000.0, "burst": 1_000, "limiter_model": "none"}
WAIT_S = 600.0


def group_settings(run_id: str, root: Path, bootstrap: str) -> Settings:
    return bench_settings(
        run_id,
        root / "data",
        topics={"partitions": 6, "replication_factor": 3, "min_insync_replicas": 2},
        themes={
            "kafka": {"bootstrap_servers": bootstrap, "standby_replicas": 0},
            "mint": LIFTED_PACING,
            "clickhouse": {"sink_enabled": False},
        },
    )


def cpu_sample(pids: Callable[[], dict[str, int]]) -> dict[str, float]:
    """CPU seconds so far of each named process, and of this one (the load generator)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    sample = {name: process_cpu_seconds(pid) for name, pid in pids().items()}
    return sample | {"load generator": usage.ru_utime + usage.ru_stime}


async def answers_until(settings: Settings, wanted: set[str], started: asyncio.Event) -> float:
    """Read the answers topic until every id in `wanted` was answered; returns when (monotonic)."""
    consumer = AIOKafkaConsumer(
        settings.topics.preflight_results,
        **client_kwargs(settings.kafka),
        group_id=None,
        auto_offset_reset="latest",
        enable_auto_commit=False,
    )
    await consumer.start()
    await consumer.seek_to_end()
    started.set()
    try:
        missing, deadline = set(wanted), time.monotonic() + WAIT_S
        while missing and time.monotonic() < deadline:
            batch = await consumer.getmany(timeout_ms=200)
            for records in batch.values():
                missing -= {json.loads(r.value)["request_id"] for r in records}
        if missing:
            raise TimeoutError(f"{len(missing)} melts unanswered after {WAIT_S} s")
        return time.monotonic()
    finally:
        await consumer.stop()


async def measure_melts(settings: Settings, tokens: list[Token], count: int) -> float:
    """Melts per second, sent as fast as one producer sends them, until the last is answered."""
    bodies = [
        melt_request(owner, STACK_MINT, [proof_ref(p) for p in proofs])
        for owner, proofs in (tokens[i % len(tokens)] for i in range(count))
    ]
    ready = asyncio.Event()
    reader = asyncio.create_task(answers_until(settings, {b["request_id"] for b in bodies}, ready))
    await ready.wait()
    async with producer(settings, acks="all", linger_ms=5) as prod:
        started = time.monotonic()
        for body in bodies:
            value = json.dumps(body).encode()
            await prod.send(settings.topics.melt_requests, key=body["npub"].encode(), value=value)
        await prod.flush()
    return count / (await reader - started)


async def ledger_total(urls: list[str]) -> float:
    async with httpx.AsyncClient(timeout=5) as http:
        totals = [await metric_total(http, url, LEDGER_COUNTER) for url in urls]
    return sum(t or 0.0 for t in totals)


async def measure_ingest(settings: Settings, urls: list[str], tokens: int) -> float:
    """Ledger proof updates per second, from the first token event sent until all are applied."""
    events = []
    for _ in range(tokens):
        owner = f"npub1{uuid.uuid4().hex}{uuid.uuid4().hex[:26]}"
        refs = [
            {
                "Y": y_from_secret(secrets.token_hex(16)),
                "amount": 2,
                "keyset_id": "00ad268c4d1f5826",
            }
            for _ in range(PROOFS_PER_TOKEN)
        ]
        events.append(
            (owner.encode(), token_event(owner, f"tok-{uuid.uuid4().hex}", STACK_MINT, refs))
        )
    target = await ledger_total(urls) + tokens * PROOFS_PER_TOKEN
    async with producer(settings, acks="all", linger_ms=5, max_batch_size=512 * 1024) as prod:
        started = time.monotonic()
        for key, value in events:
            await prod.send(settings.topics.token_status, key=key, value=value)
        await prod.flush()
    deadline = time.monotonic() + WAIT_S
    while await ledger_total(urls) < target:
        if time.monotonic() > deadline:
            raise TimeoutError("the ledgers did not apply every token event")
        await asyncio.sleep(0.1)
    return tokens * PROOFS_PER_TOKEN / (time.monotonic() - started)


async def one_size(
    cluster: KafkaCluster, workers: int, tokens: list[Token], melts: int, ingest_tokens: int
) -> dict[str, Any]:
    """Melts/s and ingest with a fresh group of `workers` workers, and each process's CPU."""
    run_id = new_run_id()
    with scratch_dir(f"scaling-{workers}") as root:
        settings = group_settings(run_id, root, cluster.bootstrap)
        members = [member_settings(settings, i, root, static=True) for i in range(workers)]
        fleet = WorkerFleet(members, root / "logs", {"PROOFRECON_WATCH_ENABLED": "false"})
        try:
            await asyncio.to_thread(fleet.start, 300.0)
            await record_holdings(settings, fleet.urls, tokens)

            def pids() -> dict[str, int]:
                found = {f"worker {m.index}": m.process.proc.pid for m in fleet.members
                         if m.process.proc is not None}  # fmt: skip
                found |= {f"kafka node {n}": pid for n, pid in cluster.node_pids().items()}
                mint_pid = mint_process()
                return found | ({"mint": mint_pid} if mint_pid else {})

            say(f"scaling: {workers} worker(s), {melts} melts")
            melts_per_s, melt_cpu = await metered(pids, measure_melts(settings, tokens, melts))
            say(f"scaling: {workers} worker(s), {ingest_tokens} token events")
            ingest, ingest_cpu = await metered(
                pids, measure_ingest(settings, fleet.urls, ingest_tokens)
            )
        finally:
            await asyncio.to_thread(fleet.stop_all)
            prefixes = (f"b{run_id}.", settings.kafka.app_id)
            await delete_topics(settings.kafka, lambda name: name.startswith(prefixes))
    return {
        "workers": workers,
        "melts_per_s": round(melts_per_s, 1),
        "melt_cpu_cores": melt_cpu,
        "proof_updates_per_s": round(ingest, 1),
        "ingest_cpu_cores": ingest_cpu,
    }


async def metered(
    pids: Callable[[], dict[str, int]], work: Awaitable[float]
) -> tuple[float, dict[str, float]]:
    """`work`'s result, and the cores each process used while it ran."""
    before, started = cpu_sample(pids), time.monotonic()
    value = await work
    after, wall = cpu_sample(pids), time.monotonic() - started
    return value, {n: round((after[n] - before[n]) / wall, 3) for n in after if n in before}


def mint_process() -> int | None:
    """The stack mint's pid (stack.sh keeps it), if this machine runs it."""
    from devkit.processes import REPO

    pid_file = REPO / ".stack" / "mint" / "mint.pid"
    return int(pid_file.read_text().strip()) if pid_file.is_file() else None


async def record_holdings(settings: Settings, urls: list[str], tokens: list[Token]) -> None:
    """Record the melts' tokens as unspent and wait until the ledgers applied them."""
    target = await ledger_total(urls) + sum(len(proofs) for _, proofs in tokens)
    async with producer(settings, acks="all") as prod:
        for owner, proofs in tokens:
            refs = [proof_ref(p) for p in proofs]
            value = token_event(owner, f"tok-{uuid.uuid4().hex[:12]}", STACK_MINT, refs)
            await prod.send(settings.topics.token_status, key=owner.encode(), value=value)
        await prod.flush()
    deadline = time.monotonic() + 120
    while await ledger_total(urls) < target and time.monotonic() < deadline:
        await asyncio.sleep(0.2)


KILL_EVERY_S = 25.0
MELTS_PER_S = 30


async def restart(
    cluster: KafkaCluster, tokens: list[Token], *, static: bool, kills: int = 3
) -> dict[str, Any]:
    """kill -9 of `kills` of the 3 workers in turn under 30 melts/s, each started again at once:
    how long until its partitions' backlog is answered, and whether the group rebalanced."""
    run_id = new_run_id()
    with scratch_dir("scaling-restart") as root:
        settings = group_settings(run_id, root, cluster.bootstrap)
        members = [member_settings(settings, i, root, static=static) for i in range(3)]
        fleet = WorkerFleet(members, root / "logs", {"PROOFRECON_WATCH_ENABLED": "false"})
        try:
            await asyncio.to_thread(fleet.start, 300.0)
            await record_holdings(settings, fleet.urls, tokens)
            sent, answered, marks = await melts_through_kills(settings, fleet, tokens, kills)
            for kill in marks:  # read the logs before the scratch dir goes
                kill["rebalanced"] = rebalanced(fleet, kill["worker"], kill["wall"])
        finally:
            await asyncio.to_thread(fleet.stop_all)
            prefixes = (f"b{run_id}.", settings.kafka.app_id)
            await delete_topics(settings.kafka, lambda name: name.startswith(prefixes))
    figures = []
    for kill in marks:
        backlog = [rid for rid, at in sent.items() if kill["kill"] <= at < kill["ready"]]
        done = max(answered[rid] for rid in backlog)
        figures.append({
            "worker": kill["worker"], "rebalanced": kill["rebalanced"],
            "ready_after_start_s": round(kill["ready"] - kill["launch"], 2),
            "backlog_after_start_s": round(done - kill["launch"], 2),
            "backlog_after_kill_s": round(done - kill["kill"], 2), "backlog": len(backlog),
        })  # fmt: skip
    return {"static_membership": static, "kills": figures}


def rebalanced(fleet: WorkerFleet, victim: int, since: float) -> bool:
    """Did another worker get a new assignment after `since` (unix), i.e. did the group
    rebalance? Faust logs every assignment."""
    for member in fleet.members:
        if member.index == victim:
            continue
        for line in member.process.log_entries():
            ts = line.get("ts")
            if (ts and "_on_partitions_assigned" in str(line.get("msg"))
                    and datetime.fromisoformat(ts).timestamp() > since):  # fmt: skip
                return True
    return False


async def melts_through_kills(
    settings: Settings, fleet: WorkerFleet, tokens: list[Token], victims: int
) -> tuple[dict[str, float], dict[str, float], list[dict[str, Any]]]:
    """Melts at 30/s; every 25 s the next worker is killed and started again at once, `victims`
    times. Returns the (monotonic) times each request was sent and first answered, and each
    kill's marks."""
    sent: dict[str, float] = {}
    answered: dict[str, float] = {}
    kills: list[dict[str, Any]] = []
    stop = asyncio.Event()
    reader = asyncio.create_task(read_answer_times(settings, answered, stop))
    total = int((victims + 0.6) * KILL_EVERY_S * MELTS_PER_S)
    async with producer(settings, acks="all", linger_ms=0) as prod:
        for i in range(total):
            every = int(KILL_EVERY_S * MELTS_PER_S)
            if i % every == every // 2 and len(kills) < victims:
                kills.append(kill_and_restart(fleet, len(kills)))
            owner, proofs = tokens[i % len(tokens)]
            body = melt_request(owner, STACK_MINT, [proof_ref(p) for p in proofs])
            sent[body["request_id"]] = time.monotonic()
            await prod.send(settings.topics.melt_requests, key=owner.encode(),
                            value=json.dumps(body).encode())  # fmt: skip
            await asyncio.sleep(1 / MELTS_PER_S)
    deadline = time.monotonic() + 120
    while any(rid not in answered for rid in sent) or any("ready" not in k for k in kills):
        if time.monotonic() > deadline:
            missing = sum(1 for rid in sent if rid not in answered)
            not_ready = [k["worker"] for k in kills if "ready" not in k]
            raise TimeoutError(f"120 s after the load: {missing} melts unanswered, "
                               f"workers {not_ready} not ready")  # fmt: skip
        await asyncio.sleep(0.2)
    stop.set()
    await reader
    return sent, answered, kills


def kill_and_restart(fleet: WorkerFleet, worker: int) -> dict[str, Any]:
    marks: dict[str, Any] = {"worker": worker, "wall": time.time(), "kill": time.monotonic()}
    fleet.kill(worker)
    fleet.restart(worker, wait=False)
    marks["launch"] = time.monotonic()

    def ready() -> None:
        fleet.process(worker).wait_ready(300.0)
        marks["ready"] = time.monotonic()

    asyncio.get_running_loop().run_in_executor(None, ready)
    return marks


async def read_answer_times(
    settings: Settings, answered: dict[str, float], stop: asyncio.Event
) -> None:
    consumer = AIOKafkaConsumer(
        settings.topics.preflight_results, **client_kwargs(settings.kafka),
        group_id=None, auto_offset_reset="earliest", enable_auto_commit=False,
    )  # fmt: skip
    await consumer.start()
    try:
        while not stop.is_set():
            for records in (await consumer.getmany(timeout_ms=100)).values():
                now = time.monotonic()
                for record in records:
                    answered.setdefault(json.loads(record.value)["request_id"], now)
    finally:
        await consumer.stop()


async def measure(sizes: list[int], melts: int, ingest_tokens: int) -> dict[str, Any]:
    await check_stack()
    scene = await asyncio.to_thread(real_scenario, STACK_MINT, unspent=90)
    tokens = tokens_of(scene.unspent, 3)
    with scratch_dir("scaling-cluster") as scratch:
        cluster = await asyncio.to_thread(KafkaCluster.open, scratch / "cluster")
        try:
            runs = [await one_size(cluster, n, tokens, melts, ingest_tokens) for n in sizes]
            say("scaling: restart after kill -9, without and with static membership")
            # Without static membership, one kill shows the wait (the dead member's session, then
            # a rebalance) well enough; the target is about static membership: every worker.
            restarts = [
                await restart(cluster, tokens, static=s, kills=3 if s else 1) for s in (False, True)
            ]
        finally:
            await asyncio.to_thread(cluster.close)
    return {
        "bench": "scaling",
        "started_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": machine(),
        "params": {"workers": sizes, "melts": melts, "token_events": ingest_tokens,
                   "proofs_per_token": PROOFS_PER_TOKEN, "private_cluster": cluster.private},
        "runs": runs,
        "restarts": restarts,
    }  # fmt: skip


def to_result(data: dict[str, Any]) -> BenchResult:
    runs = data["runs"]
    base_melts = runs[0]["melts_per_s"] if runs else 0.0
    base_ingest = runs[0]["proof_updates_per_s"] if runs else 0.0

    def row(run: dict[str, Any], metric: str, key: str, base: float, cpu: str) -> BenchResult:
        workers_cpu = sum(v for k, v in run[cpu].items() if k.startswith("worker"))
        return BenchResult(
            "scaling", f"{metric}, {run['workers']} worker(s)", run[key], "/s", base,
            round(run[key] / base, 3) if base else None, "(measured)", None,
            details={"cpu_cores": run[cpu], "workers_cpu_cores": round(workers_cpu, 3)},
        )  # fmt: skip

    rows = [row(r, "melts answered", "melts_per_s", base_melts, "melt_cpu_cores") for r in runs]
    rows += [
        row(r, "ledger proof updates", "proof_updates_per_s", base_ingest, "ingest_cpu_cores")
        for r in runs
    ]
    for r in data["restarts"]:
        membership = "static membership" if r["static_membership"] else "no instance id"
        for kill in r["kills"]:
            role = "a rebalance" if kill["rebalanced"] else "no rebalance"
            rows.append(BenchResult(
                "scaling", f"worker {kill['worker']} kill -9 -> backlog answered after its start "
                f"({membership}, {role})", kill["backlog_after_start_s"], "s", None, None,
                "≤ 3 s" if r["static_membership"] else "-",
                kill["backlog_after_start_s"] <= 3 if r["static_membership"] else None,
                details=dict(kill),
            ))  # fmt: skip
    first, *more = rows
    first.details = {**first.details, **{k: v for k, v in data.items() if k not in first.details}}
    first.more = more
    return first


async def run(quick: bool) -> BenchResult:
    data = await measure([1, 2, 3], 1000 if quick else 2000, 500 if quick else 2000)
    data["quick"] = quick
    return recorded("scaling", data, to_result)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--workers", default="1,2,3", help="group sizes, comma-separated ('' for none)"
    )
    parser.add_argument("--melts", type=int, default=2000, help="melts per measurement")
    parser.add_argument("--tokens", type=int, default=2000, help="token events per measurement")
    args = parser.parse_args()
    sizes = [int(n) for n in args.workers.split(",") if n]  # none: the restart figures only
    data = asyncio.run(measure(sizes, args.melts, args.tokens))
    out = write_json("bench_scaling", data)
    print(format_table([to_result(data)]))
    print(json.dumps({"runs": data["runs"], "restarts": data["restarts"]}, indent=2))
    print(f"written to {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
