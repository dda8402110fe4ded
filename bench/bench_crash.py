"""Crash (kill -9) of a worker under melt load: every request answered, and how long it took.

    .venv/bin/python -m bench crash [--quick]
    .venv/bin/python -m bench.bench_crash [--rate 50] [--duration 60] [--kill-at 20]

Target (README, "Figures"): 0 melt requests unanswered, 0 duplicate rows in ClickHouse.

Real proofs are recorded in a worker's ledger (most unspent, some spent elsewhere so melts of
them open HIGH discrepancies and the discrepancy path carries load too). A wallet then publishes
melts at `--rate` for `--duration` s without waiting for answers; at `--kill-at` s the worker
gets SIGKILL and is started again at once (same data dir and consumer group) while the load goes
on. A reader consumes the answers topic from its start. Reported:

- unanswered request_ids (target 0) and request_ids answered more than once (at-least-once
  allows these: the wallet keeps the first answer);
- restart_ready_s: kill -> the new worker's /readyz; first_answer_s: kill -> the first answer
  consumed more than 1 s after the kill (a killed process's last answers land within
  milliseconds; a new one needs seconds just to import); caught_up_s (the recovery time):
  kill -> every request sent up to the first new answer is answered;
- ClickHouse duplicates (bench/support/clickhouse_check.py), with the sink inside the worker or,
  with `--set clickhouse.sink_enabled=false`, `proofrecon sink` beside it, killed with it: raw
  rows minus distinct ids per table, and the hourly view's count against its raw rows.

The baseline is the steady state before the kill: its p99 answer latency is shown beside the
recovery time.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from aiokafka import AIOKafkaConsumer

from bench.common import (
    LOGS,
    STACK_MINT,
    BenchResult,
    BenchWorker,
    Token,
    add_set_option,
    bench_settings,
    check_stack,
    delete_run_topics,
    format_table,
    machine,
    melt_request,
    new_run_id,
    producer,
    proof_ref,
    real_scenario,
    record_tokens,
    recorded,
    say,
    scratch_dir,
    set_overrides,
    summary_ms,
    tokens_of,
    write_json,
)
from bench.support.clickhouse_check import SinkMode, duplicate_rows, sink_mode, standalone_sink
from devkit.mints import free_port
from devkit.processes import SinkProcess
from streams.core.kafka import client_kwargs
from streams.core.settings import Settings

PROOFS_PER_MELT = 3
OWNERS = 10
SPENT_OWNERS = 2
LIFTED_PACING = {"requests_per_minute": 60_000.0, "burst": 1_000, "limiter_model": "none"}
ANSWER_WAIT_S = 240.0
# A killed worker's last answers land within milliseconds; a new one needs seconds to import.
OLD_ANSWER_GRACE_S = 1.0


@dataclass
class WalletBook:
    """What the wallet saw: when each request went out and when its answers came back."""

    sent: dict[str, float] = field(default_factory=dict)
    answers: dict[str, list[float]] = field(default_factory=dict)
    verdicts: Counter[str] = field(default_factory=Counter)
    kill_at: float | None = None
    ready_at: float | None = None

    def unanswered(self) -> set[str]:
        return set(self.sent) - set(self.answers)

    def duplicates(self) -> int:
        return sum(len(times) - 1 for rid, times in self.answers.items() if rid in self.sent)

    def latencies(self, start: float, end: float) -> list[float]:
        return [
            self.answers[rid][0] - at
            for rid, at in self.sent.items()
            if start <= at < end and rid in self.answers
        ]


async def read_answers(settings: Settings, book: WalletBook, stop: asyncio.Event) -> None:
    consumer = AIOKafkaConsumer(
        settings.topics.preflight_results,
        **client_kwargs(settings.kafka),
        group_id=None,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await consumer.start()
    try:
        while not stop.is_set():
            batch = await consumer.getmany(timeout_ms=200)
            now = time.monotonic()
            for records in batch.values():
                for record in records:
                    answer = json.loads(record.value)
                    book.answers.setdefault(answer["request_id"], []).append(now)
                    book.verdicts[f"{answer['verdict']}/{answer['code'] or '-'}"] += 1
    finally:
        await consumer.stop()


async def send_melts(
    settings: Settings, tokens: list[Token], rate: float, duration: float, book: WalletBook
) -> None:
    """Publish melts at `rate` without waiting for answers (the wallet does not stop either)."""
    async with producer(settings, acks="all", linger_ms=0) as prod:
        loop = asyncio.get_running_loop()
        started = loop.time()
        for i in range(int(rate * duration)):
            delay = started + i / rate - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            owner, proofs = tokens[i % len(tokens)]
            body = melt_request(owner, STACK_MINT, [proof_ref(p) for p in proofs])
            book.sent[body["request_id"]] = time.monotonic()
            await prod.send(
                settings.topics.melt_requests, key=owner.encode(), value=json.dumps(body).encode()
            )
        await prod.flush()


class Deployment:
    """The worker, and the standalone ClickHouse sink when that is how the sink runs."""

    def __init__(self, settings: Settings, sink: SinkMode) -> None:
        self.worker = BenchWorker(settings, "crash")
        self.sink: SinkProcess | None = None
        if sink == "standalone":
            log = LOGS / f"crash-sink-{settings.kafka.app_id}.log"
            self.sink = standalone_sink(settings, log, free_port())

    def start(self) -> None:
        # Side by side, as two services would restart: the worker's recovery must not include
        # the sink's start-up.
        if self.sink is not None:
            self.sink.launch()
        self.worker.start(180.0)
        if self.sink is not None:
            self.sink.wait_ready(120.0)

    def kill(self) -> None:
        # The whole deployment dies at once, as when a machine is lost.
        self.worker.kill()
        if self.sink is not None:
            self.sink.kill()

    def stop(self) -> None:
        self.worker.stop()
        if self.sink is not None:
            self.sink.stop()


async def kill_and_restart(deployment: Deployment, after_s: float, book: WalletBook) -> None:
    await asyncio.sleep(after_s)
    say("crash: kill -9")
    book.kill_at = time.monotonic()
    await asyncio.to_thread(deployment.kill)
    await asyncio.to_thread(deployment.start)
    book.ready_at = time.monotonic()
    say(f"crash: restarted worker ready after {book.ready_at - book.kill_at:.1f} s")


async def wait_answered(book: WalletBook, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while book.unanswered() and time.monotonic() < deadline:
        await asyncio.sleep(0.5)


def recovery(book: WalletBook) -> dict[str, Any]:
    assert book.kill_at is not None
    kill = book.kill_at
    grace = kill + OLD_ANSWER_GRACE_S
    after = sorted(t for times in book.answers.values() for t in times if t > grace)
    first = after[0] if after else None
    # The outage's backlog: every request sent before the first new answer.
    backlog = [rid for rid, at in book.sent.items() if at < (first or float("inf"))]
    answered = [book.answers[rid][0] for rid in backlog if rid in book.answers]
    caught_up = max(answered) if answered and len(answered) == len(backlog) else None

    def since_kill(t: float | None) -> float | None:
        return round(t - kill, 2) if t is not None else None

    return {
        "restart_ready_s": since_kill(book.ready_at),
        "first_answer_s": since_kill(first),
        "caught_up_s": since_kill(caught_up),
    }


async def measure(rate: float, duration: float, kill_at: float) -> dict[str, Any]:
    await check_stack()
    run_id = new_run_id()
    n_unspent, n_spent = OWNERS * PROOFS_PER_MELT, SPENT_OWNERS * PROOFS_PER_MELT
    say(f"crash: minting {n_unspent + n_spent} real proofs at {STACK_MINT}")
    scene = await asyncio.to_thread(
        real_scenario, STACK_MINT, unspent=n_unspent, spent_elsewhere=n_spent
    )
    tokens = tokens_of(scene.unspent, PROOFS_PER_MELT)
    tokens += tokens_of(scene.spent_elsewhere, PROOFS_PER_MELT)
    with scratch_dir("crash") as tmp:
        settings = bench_settings(run_id, tmp / "data", themes={"mint": LIFTED_PACING})
        sink = sink_mode(settings)
        try:
            data = await _run_with_kill(Deployment(settings, sink), tokens, rate, duration, kill_at)
            data["clickhouse"] = await _clickhouse(settings)
        finally:
            await delete_run_topics(settings, run_id)
    data.update(
        {
            "bench": "crash",
            "started_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "machine": machine(),
            "params": {"rate": rate, "duration_s": duration, "kill_at_s": kill_at},
            "clickhouse_sink": sink,
        }
    )
    return data


async def _clickhouse(settings: Settings) -> dict[str, Any]:
    try:
        return await asyncio.to_thread(duplicate_rows, settings)
    except Exception as exc:  # the sink is young: report what failed instead of losing the run
        return {"duplicates": None, "error": f"{type(exc).__name__}: {exc}"}


async def _run_with_kill(
    deployment: Deployment, tokens: list[Token], rate: float, duration: float, kill_at: float
) -> dict[str, Any]:
    book, stop = WalletBook(), asyncio.Event()
    settings, worker = deployment.worker.settings, deployment.worker
    await asyncio.to_thread(deployment.start)
    try:
        # The spent proofs are "unspent" in the wallet DB: melts of them open HIGH discrepancies.
        ledger = [(owner, "unspent", proofs) for owner, proofs in tokens]
        await record_tokens(settings, worker, ledger, STACK_MINT)
        reader = asyncio.create_task(read_answers(settings, book, stop))
        say(f"crash: {rate}/s for {duration} s, kill -9 at {kill_at} s")
        started = time.monotonic()
        await asyncio.gather(
            send_melts(settings, tokens, rate, duration, book),
            kill_and_restart(deployment, kill_at, book),
        )
        await wait_answered(book, ANSWER_WAIT_S)
        await asyncio.sleep(3.0)  # late duplicates still count
        stop.set()
        await reader
    finally:
        await asyncio.to_thread(deployment.stop)
    assert book.kill_at is not None
    steady = book.latencies(started, book.kill_at - 1.0)
    return {
        "sent": len(book.sent),
        "answered": len(set(book.answers) & set(book.sent)),
        "unanswered": len(book.unanswered()),
        "answered_more_than_once": book.duplicates(),
        "verdicts": dict(book.verdicts),
        "before_kill_latency": summary_ms(steady),
        "max_latency_s": round(max(book.latencies(started, float("inf")), default=0.0), 2),
        **recovery(book),
    }


def to_result(data: dict[str, Any]) -> BenchResult:
    unanswered = float(data["unanswered"])
    steady_p99 = data["before_kill_latency"]["p99_ms"] / 1000
    ch = data["clickhouse"]
    dupes = ch["duplicates"]
    ch_row = BenchResult(
        "crash",
        "duplicate rows in ClickHouse",
        None if dupes is None else float(dupes),
        "",
        None,
        None,
        "0",
        None if dupes is None else dupes == 0,
        details={"covered": dupes is not None, "sink": data.get("clickhouse_sink"), **ch},
    )
    return BenchResult(
        name="crash",
        metric=f"melt requests unanswered after kill -9 ({data['sent']} sent)",
        value=unanswered,
        unit="",
        baseline=None,
        ratio=None,
        target="0",
        passed=unanswered == 0,
        details=data,
        more=[
            BenchResult(
                "crash", "recovery: kill -> backlog answered", data["caught_up_s"], "s",
                round(steady_p99, 3), None, "(none)", None,
                details={"baseline_is": "p99 answer latency before the kill"},
            ),
            BenchResult(
                "crash", "requests answered more than once", float(data["answered_more_than_once"]),
                "", None, None, "(allowed)", None,
            ),
            ch_row,
        ],
    )  # fmt: skip


async def run(quick: bool) -> BenchResult:
    data = await measure(50.0, 25.0 if quick else 45.0, 8.0 if quick else 20.0)
    data["quick"] = quick
    return recorded("crash", data, to_result)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rate", type=float, default=50.0, help="melts per second")
    parser.add_argument("--duration", type=float, default=60.0, help="seconds of load")
    parser.add_argument("--kill-at", type=float, default=20.0, help="seconds into the load")
    add_set_option(parser)
    args = parser.parse_args()
    set_overrides(args.set)
    data = asyncio.run(measure(args.rate, args.duration, args.kill_at))
    out = write_json("bench_crash", data)
    print(format_table([to_result(data)]))
    print(json.dumps(data, indent=2))
    print(f"written to {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
