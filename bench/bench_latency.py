"""Preflight latency, request published -> answer consumed, against the floor of the same run.

    .venv/bin/python -m bench latency [--quick]
    .venv/bin/python -m bench.bench_latency [--rate 50] [--duration 30] [--pacing lifted|default]

Target (README, "Figures"): at 50 req/s, p50 <= 2x and p99 <= 3x the floor, where the floor is
what no pipeline can beat: a bare Kafka round trip plus one checkstate of the same proofs
(p50 + p50, p99 + p99), both measured in the same run.

Real proofs minted at the stack's mint are recorded in a worker's ledger first; then melts of 3
of them each are sent open-loop at `--rate` for `--duration` s through `PreflightClient` (the
wallet's client), timing each from before it is published until its answer is consumed. An
answer that never comes counts as the client's timeout, so it cannot flatter p99.

The floor, same rate, same proofs:
- Kafka: a trivial echo process (bench/support/kafka_echo.py) answers each request from its JSON
  alone, through the same client: the same two Kafka hops without the pipeline;
- the mint: one checkstate of the melt's Ys posted straight to the mint (one keep-alive client,
  as the gateway keeps one).
Each runs half before the pipeline and half after, so drift in the machine's load hits all
three. Also reported: the worker's CPU use during the pipeline phase (`worker_cpu_cores`),
steadier than latency on a shared machine (e.g. with and without
`--set clickhouse.sink_enabled=false`), and the checkstate requests it made per melt.

Pacing: the stack's mint is local and exempt from rate limits, so the worker's budget for it is
lifted (`--pacing lifted`, the default). Under the default 40 requests/min (`--pacing default`)
a melt waits for the next token, up to 1.5 s, whatever the pipeline does: that run measures
the budget, not the pipeline.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import httpx

from bench.common import (
    REPO,
    STACK_MINT,
    BenchResult,
    BenchWorker,
    Token,
    add_set_option,
    at_most,
    bench_settings,
    check_stack,
    cpu_seconds,
    create_topics,
    delete_run_topics,
    format_table,
    machine,
    melt_request,
    metric_total,
    new_run_id,
    open_loop,
    proof_ref,
    ratio,
    real_scenario,
    record_tokens,
    recorded,
    running_worker,
    say,
    scratch_dir,
    set_overrides,
    summary_ms,
    tokens_of,
    write_json,
)
from streams.client import PreflightClient
from streams.core.contracts import PreflightResult, parse_melt_request
from streams.core.errors import PreflightTimeout
from streams.core.settings import Settings

TARGET_P50_X = 2.0  # times the floor's p50
TARGET_P99_X = 3.0  # times the floor's p99
TIMEOUT_S = 10.0
WARMUP_S = 2.0
PROOFS_PER_MELT = 3
OWNERS = 10
LIFTED_PACING = {"requests_per_minute": 60_000.0, "burst": 1_000, "limiter_model": "none"}


@dataclass
class Sample:
    latencies_s: list[float] = field(default_factory=list)
    # Where the time went (seconds, wall clocks of one machine): publish -> the worker starts on
    # the request (Kafka in, Faust's consumer, the take_events window), the worker's own
    # duration_ms (mint check included), its answered_at -> the answer consumed (Kafka out).
    legs: dict[str, list[float]] = field(
        default_factory=lambda: {"to_worker": [], "in_worker": [], "to_client": []}
    )
    outcomes: Counter[str] = field(default_factory=Counter)
    sent: int = 0
    max_lag_ms: float = 0.0

    def add_legs(self, sent_at: float, received_at: float, result: PreflightResult) -> None:
        answered_at = result.answered_at.timestamp()
        inside = result.duration_ms / 1000
        self.legs["to_worker"].append(answered_at - inside - sent_at)
        self.legs["in_worker"].append(inside)
        self.legs["to_client"].append(received_at - answered_at)

    def to_json(self) -> dict[str, Any]:
        legs = {
            name: {k: v for k, v in summary_ms(values).items() if k in ("p50_ms", "p99_ms")}
            for name, values in self.legs.items()
        }
        return {
            "sent": self.sent,
            "sender_max_lag_ms": self.max_lag_ms,
            "outcomes": dict(self.outcomes),
            "latency": summary_ms(self.latencies_s),
            "legs": legs,
        }


async def drive(
    client: PreflightClient, tokens: list[Token], rate: float, duration: float, sample: Sample
) -> None:
    """Open-loop melts at `rate` for `duration` s, results into `sample`."""

    async def fire(i: int) -> None:
        owner, proofs = tokens[i % len(tokens)]
        body = melt_request(owner, STACK_MINT, [proof_ref(p) for p in proofs])
        request = parse_melt_request(json.dumps(body).encode())
        started, sent_at = time.perf_counter(), time.time()
        try:
            result = await client.preflight(request, timeout=TIMEOUT_S)
        except PreflightTimeout:
            sample.latencies_s.append(TIMEOUT_S)
            sample.outcomes["unanswered"] += 1
            return
        sample.latencies_s.append(time.perf_counter() - started)
        sample.add_legs(sent_at, time.time(), result)
        sample.outcomes[f"{result.verdict.value}/{result.code or '-'}"] += 1

    load = await open_loop(rate, duration, fire)
    sample.sent += load.sent
    sample.max_lag_ms = max(sample.max_lag_ms, load.max_lag_ms)


class EchoProcess:
    """bench/support/kafka_echo.py in its own process, between two fresh topics."""

    def __init__(self, settings: Settings, run_id: str) -> None:
        self.requests = f"b{run_id}.echo-requests"
        self.replies = f"b{run_id}.echo-replies"
        self.group = f"proofrecon-bench-{run_id}-echo"
        self.settings = settings
        self.proc: subprocess.Popen[bytes] | None = None

    def client_settings(self) -> Settings:
        topics = self.settings.topics.model_copy(
            update={"melt_requests": self.requests, "preflight_results": self.replies}
        )
        return self.settings.model_copy(update={"topics": topics})

    async def start(self) -> None:
        partitions = self.settings.topics.partitions
        await create_topics(self.settings, [self.requests, self.replies], partitions)
        cmd = [sys.executable, "-m", "bench.support.kafka_echo"]
        cmd += ["--bootstrap", self.settings.kafka.bootstrap_servers]
        cmd += ["--in", self.requests, "--out", self.replies, "--group", self.group]
        self.proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.PIPE)
        assert self.proc.stdout is not None
        line = await asyncio.wait_for(asyncio.to_thread(self.proc.stdout.readline), 60)
        if line.strip() != b"ready":
            raise RuntimeError(f"the echo process did not start: {line!r}")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)


async def direct_checks(
    tokens: list[Token], rate: float, duration: float, out: list[float]
) -> None:
    """One checkstate per melt straight to the mint, open loop at `rate`: the mint's part of the
    floor (latencies in seconds into `out`)."""
    async with httpx.AsyncClient(base_url=STACK_MINT, timeout=TIMEOUT_S) as http:

        async def fire(i: int) -> None:
            ys = [p.Y for p in tokens[i % len(tokens)][1]]
            started = time.perf_counter()
            try:
                (await http.post("/v1/checkstate", json={"Ys": ys})).raise_for_status()
            except httpx.HTTPError:
                out.append(TIMEOUT_S)
                return
            out.append(time.perf_counter() - started)

        await open_loop(rate, duration, fire)


async def measure(rate: float, duration: float, pacing: str) -> dict[str, Any]:
    await check_stack()
    run_id = new_run_id()
    say(f"latency: minting {OWNERS * PROOFS_PER_MELT} real proofs at {STACK_MINT}")
    scene = await asyncio.to_thread(real_scenario, STACK_MINT, unspent=OWNERS * PROOFS_PER_MELT)
    tokens = tokens_of(scene.unspent, PROOFS_PER_MELT)
    mint = LIFTED_PACING if pacing == "lifted" else {}
    pipeline, baseline, direct = Sample(), Sample(), Sample()
    with scratch_dir("latency") as tmp:
        settings = bench_settings(run_id, tmp / "data", themes={"mint": mint})
        echo = EchoProcess(settings, run_id)
        try:
            async with running_worker(settings, "latency") as worker:
                ledger = [(owner, "unspent", p) for owner, p in tokens]
                await record_tokens(settings, worker, ledger, STACK_MINT)
                await echo.start()
                phases = Phases(settings, echo, tokens, rate, duration)
                cores = await phases.run(pipeline, baseline, direct, worker.pid)
                mint_used = await mint_usage(worker)
        finally:
            echo.stop()
            await delete_run_topics(settings, run_id)
    p, b = pipeline.to_json(), baseline.to_json()
    c = summary_ms(direct.latencies_s)
    floor = {q: round(b["latency"][q] + c[q], 2) for q in ("p50_ms", "p99_ms")}
    return {
        "bench": "latency",
        "started_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": machine(),
        "params": {"rate": rate, "duration_s": duration, "pacing": pacing, "warmup_s": WARMUP_S},
        "pipeline": p,
        "kafka_echo": b,
        "direct_checkstate": c,
        "floor": floor,
        "mint_requests": mint_used,
        "mint_requests_per_melt": round(mint_used["requests"] / max(1, p["sent"]), 3),
        "worker_cpu_cores": round(cores, 3),
        "ratio_p50": ratio(p["latency"]["p50_ms"], floor["p50_ms"]),
        "ratio_p99": ratio(p["latency"]["p99_ms"], floor["p99_ms"]),
    }


@dataclass
class Phases:
    """Echo half, checkstate half, the pipeline, checkstate half, echo half; each client warmed
    up first (connections, metadata)."""

    settings: Settings
    echo: EchoProcess
    tokens: list[Token]
    rate: float
    duration: float

    async def run(self, pipeline: Sample, baseline: Sample, direct: Sample, pid: int) -> float:
        """The worker's CPU use during the pipeline phase, in cores."""
        rate, half = self.rate, self.duration / 2
        async with (
            PreflightClient(self.settings) as client,
            PreflightClient(self.echo.client_settings()) as echo_client,
        ):
            await drive(echo_client, self.tokens, rate, WARMUP_S, Sample())
            say(f"latency: kafka echo, {rate}/s for {half:g} s")
            await drive(echo_client, self.tokens, rate, half, baseline)
            say(f"latency: direct checkstate, {rate}/s for {half / 2:g} s")
            await direct_checks(self.tokens, rate, half / 2, direct.latencies_s)
            await drive(client, self.tokens, rate, WARMUP_S, Sample())
            say(f"latency: pipeline, {rate}/s for {self.duration:g} s")
            cpu0, t0 = cpu_seconds(pid), time.monotonic()
            await drive(client, self.tokens, rate, self.duration, pipeline)
            cores = (cpu_seconds(pid) - cpu0) / (time.monotonic() - t0)
            say(f"latency: direct checkstate and kafka echo again ({half / 2:g} s, {half:g} s)")
            await direct_checks(self.tokens, rate, half / 2, direct.latencies_s)
            await drive(echo_client, self.tokens, rate, half, baseline)
        return cores


async def mint_usage(worker: BenchWorker) -> dict[str, float]:
    """The worker's checkstate requests (warm-up included): how many, how long, how big."""
    names = ("duration_seconds_sum", "duration_seconds_count", "ys_sum")
    async with httpx.AsyncClient(timeout=5) as http:
        got = [await metric_total(http, worker.url, f"proofrecon_mint_request_{n}") for n in names]
    seconds, count, ys = (v or 0.0 for v in got)
    return {
        "requests": count,
        "mean_ms": round(1000 * seconds / count, 2) if count else 0.0,
        "mean_ys": round(ys / count, 1) if count else 0.0,
    }


def to_result(data: dict[str, Any]) -> BenchResult:
    p, floor = data["pipeline"]["latency"], data["floor"]
    details = {
        **data,
        "baseline_is": "the floor: a bare Kafka round trip (echo process, same client) plus one "
        "direct checkstate of the same Ys, same rate, same run",
    }

    def row(q: str, times: float) -> BenchResult:
        value, base = float(p[f"{q}_ms"]), float(floor[f"{q}_ms"])
        return BenchResult(
            name="latency",
            metric=f"preflight {q}, published -> answer consumed ({data['params']['rate']:g}/s)",
            value=value,
            unit="ms",
            baseline=base,
            ratio=ratio(value, base),
            target=f"<= {times:g}x floor",
            passed=at_most(value, times * base),
        )

    main_row, p99_row = row("p50", TARGET_P50_X), row("p99", TARGET_P99_X)
    main_row.details, main_row.more = details, [p99_row]
    return main_row


async def run(quick: bool) -> BenchResult:
    data = await measure(50.0, 10.0 if quick else 30.0, "lifted")
    data["quick"] = quick
    return recorded("latency", data, to_result)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rate", type=float, default=50.0, help="melts per second")
    parser.add_argument("--duration", type=float, default=30.0, help="seconds of pipeline load")
    parser.add_argument("--pacing", choices=["lifted", "default"], default="lifted")
    add_set_option(parser)
    args = parser.parse_args()
    set_overrides(args.set)
    data = asyncio.run(measure(args.rate, args.duration, args.pacing))
    out = write_json("bench_latency", data)
    print(format_table([to_result(data)]))
    print(json.dumps({k: data[k] for k in ("pipeline", "kafka_echo")}, indent=2))
    print(f"written to {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
