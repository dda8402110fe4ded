"""`proofrecon demo`: the whole pipeline once, on the local stack, with real proofs.

A simulated custodial wallet makes real proofs at the mint, records them in its DB (token-status
events), some get spent behind its back, and it asks for melt preflights. A worker subprocess
answers; the demo prints the verdicts and the discrepancies by severity, then what the analytics
and the alerts made of it (when those parts are present).
"""

from __future__ import annotations

import asyncio
import shutil
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from devkit.processes import WorkerProcess, read_topic
from devkit.wallet import CashuWallet, Scenario, WalletProof
from sinks.clickhouse import redact_url
from streams.client import PreflightClient, TokenStatusPublisher, token_status_event
from streams.core.contracts import MeltRequest, PreflightResult
from streams.core.kafka import describe_topics, ensure_topics
from streams.core.settings import Settings


@dataclass
class DemoRun:
    settings: Settings
    worker: WorkerProcess
    npubs: dict[str, str]
    results: list[tuple[str, str, PreflightResult]]
    discrepancies: list[dict[str, Any]]
    corrections: list[dict[str, Any]] = field(default_factory=list)


async def _stack_report(settings: Settings) -> list[str]:
    await ensure_topics(settings)
    topics = await describe_topics(settings)
    lines = [f"kafka       {settings.kafka.bootstrap_servers}: {len(topics)} topics ready"]
    async with httpx.AsyncClient(timeout=5) as client:
        for mint_url in settings.mint.allowlist:
            info = (await client.get(f"{mint_url}/v1/info")).json()
            lines.append(f"mint        {mint_url}: {info.get('version')}")
    lines.append(f"clickhouse  {redact_url(settings.clickhouse_url)} (owned by the worker)")
    return lines


def _token(owner: str, mint_url: str, proofs: list[WalletProof], status: str) -> dict[str, Any]:
    # The wallet DB holds secrets; the edge turns them into Ys and drops them.
    refs = [{"secret": p.secret, "amount": p.amount, "keyset_id": p.keyset_id} for p in proofs]
    return token_status_event(owner, f"tok-{uuid.uuid4().hex[:8]}", mint_url, status, refs)


def _melt(owner: str, mint_url: str, proofs: list[WalletProof]) -> MeltRequest:
    return MeltRequest.model_validate(
        {
            "request_id": f"demo-{uuid.uuid4().hex[:12]}",
            "npub": owner,
            "mint_url": mint_url,
            "proofs": [{"Y": p.Y, "amount": p.amount, "keyset_id": p.keyset_id} for p in proofs],
            "requested_at": datetime.now(UTC).isoformat(),
        }
    )


Plan = tuple[dict[str, str], list[dict[str, Any]], list[tuple[str, MeltRequest]]]


def _plan(scene: Scenario, mint_url: str) -> Plan:
    """Who holds what in the wallet DB, and which melts they ask for."""
    run = uuid.uuid4().hex[:6]
    npubs = {name: f"npub1demo{name}{run}" for name in ("alice", "bob", "carol", "dave", "erin")}
    u, swap, elsewhere = scene.unspent, scene.spent_swap, scene.spent_elsewhere
    tokens = [
        ("alice", u[0:2], "unspent"),  # clean
        ("bob", elsewhere[0:3] + u[2:3], "unspent"),  # three spent behind the wallet's back
        ("carol", swap[0:1], "pending"),  # a melt that went through, DB still pending
        ("carol", u[3:4], "unspent"),
        ("dave", u[4:5], "spent"),  # marked spent, still unspent at the mint
    ]
    melts = [
        ("alice", u[0:2]),
        ("bob", elsewhere[0:3] + u[2:3]),
        ("carol", swap[0:1] + u[3:4]),
        ("dave", u[4:5]),
        ("erin", u[5:6]),  # proofs the wallet DB never saw
    ]
    return (
        npubs,
        [_token(npubs[n], mint_url, p, s) for n, p, s in tokens],
        [(n, _melt(npubs[n], mint_url, p)) for n, p in melts],
    )


async def _wait_ledger(
    worker: WorkerProcess, tokens: list[dict[str, Any]], scene: Scenario
) -> None:
    ys_by_secret = {p.secret: p.Y for p in scene.unspent + scene.spent_swap + scene.spent_elsewhere}
    async with httpx.AsyncClient(base_url=worker.url, timeout=5) as http:
        for token in tokens:
            for proof in token["proofs"]:
                y = ys_by_secret[proof["secret"]]
                for _ in range(200):
                    view = (
                        await http.get(f"/v1/proofs/{y}", params={"npub": token["npub"]})
                    ).json()
                    if view["ledger"] is not None:
                        break
                    await asyncio.sleep(0.05)


# Faust refuses to start when a table store holds offsets its changelog topic no longer has.
STALE_TABLES = "ConsistencyError"


def _start_worker(worker: WorkerProcess) -> None:
    """Start the demo's worker; rebuild its table stores once if Kafka's data was removed.

    The stores under <data_dir>/faust are a local copy of the changelog topics. After the local
    stack's data is wiped (`make stack-clean`, topics deleted by hand) they are ahead of Kafka and
    the worker stops with ConsistencyError. For the demo the topics are the truth: drop the copy
    and let the worker restore from them. A production worker keeps failing loudly instead.
    """
    try:
        worker.start()
        return
    except AssertionError:
        if STALE_TABLES not in worker.log_text():
            raise
    stores = worker.settings.data_dir / "faust"
    print(f"worker: its table stores ({stores}) are ahead of Kafka; rebuilding them ...")
    shutil.rmtree(stores, ignore_errors=True)
    worker.start()


async def _scenario(settings: Settings, workdir: Path) -> DemoRun:
    mint_url = settings.mint.allowlist[0]
    print(f"\nwallet: minting real proofs at {mint_url} and spending some behind its back ...")
    scene = await asyncio.to_thread(
        CashuWallet(mint_url, workdir / "wallet").scenario,
        unspent=6,
        spent_by_swap=1,
        spent_elsewhere=3,
    )
    npubs, tokens, melts = _plan(scene, mint_url)
    worker = WorkerProcess(settings, workdir / "worker.log")
    print(f"worker: starting (web API on {worker.url}) ...")
    await asyncio.to_thread(_start_worker, worker)
    async with TokenStatusPublisher(settings) as publisher:
        for token in tokens:
            await publisher.publish(token)
    await _wait_ledger(worker, tokens, scene)
    results = []
    async with PreflightClient(settings) as client:
        for name, request in melts:
            results.append((name, request.request_id, await client.preflight(request, timeout=30)))
    mine = set(npubs.values())
    records = await read_topic(settings, settings.topics.discrepancies, idle=2.0)
    fixes = await read_topic(settings, settings.topics.corrections, idle=1.0)
    run = DemoRun(settings, worker, npubs, results, [r for r in records if r["npub"] in mine])
    run.corrections = [c for c in fixes if c["npub"] in mine]
    return run


def _print_results(run: DemoRun) -> None:
    print("\nmelt preflights")
    print(f"  {'user':6} {'verdict':30} {'code':28} found resolved  H/M/L")
    for name, _, result in run.results:
        counts = result.severity_counts
        print(
            f"  {name:6} {result.verdict.value:30} {(result.code or '-'):28} "
            f"{result.discrepancies_found:5} {result.discrepancies_resolved:8}  "
            f"{counts.high}/{counts.medium}/{counts.low}"
        )
    print("\ndiscrepancy events by severity and type")
    by_kind = Counter((r["severity"], r["type"]) for r in run.discrepancies)
    order = {"HIGH": 0, "MEDIUM": 1, "LOW": 2}
    for (severity, kind), n in sorted(by_kind.items(), key=lambda i: (order[i[0][0]], i[0][1])):
        print(f"  {severity:6} {kind:26} {n}")
    print("\ncorrections for the wallet DB")
    for fix in run.corrections:
        name = next(n for n, npub in run.npubs.items() if npub == fix["npub"])
        print(f"  {name:6} token {fix['token_id']}: set {fix['set_status']} ({fix['reason']})")


async def _wait_for_sink(run: DemoRun, timeout: float = 30.0) -> None:
    """The worker's sink inserts in batches: wait until this run's discrepancies are stored."""
    topic = run.settings.topics.discrepancies
    async with httpx.AsyncClient(base_url=run.worker.url, timeout=5) as http:
        for _ in range(int(timeout / 0.25)):
            sink = (await http.get("/v1/analytics/ping")).json().get("sink") or {}
            if sink.get("rows_inserted", {}).get(topic, 0) >= len(run.discrepancies):
                return
            await asyncio.sleep(0.25)


def _analytics(run: DemoRun) -> None:
    from sinks.analytics.commands import print_analytics_summary

    print("\nhourly severity rates (ClickHouse, through the worker's web API)")
    asyncio.run(_wait_for_sink(run))
    print_analytics_summary(run.settings, run.worker.log_path.parent / "report.html")


def _alerts(run: DemoRun, since: datetime) -> None:
    from streams.alerting.summary import read_alerts, summarise_alerts

    print("\nalerts raised (recon.alerts)")
    # HIGH discrepancies are gathered for a moment before their alert is raised.
    asyncio.run(asyncio.sleep(run.settings.alerts.high_gather_s + 1.0))
    alerts = asyncio.run(read_alerts(run.settings, since=since))
    mine = set(run.npubs.values())
    # The topic is shared with every earlier run: show this run's alerts and mint-wide ones.
    shown = [a for a in alerts if a.npub is None or a.npub in mine]
    for line in summarise_alerts(shown):
        print(f"  {line}")


def run_demo(settings: Settings) -> int:
    for line in asyncio.run(_stack_report(settings)):
        print(line)
    started = datetime.now(UTC)
    workdir = settings.data_dir / "demo" / started.strftime("%Y%m%dT%H%M%S")
    workdir.mkdir(parents=True, exist_ok=True)
    run = asyncio.run(_scenario(settings, workdir))
    try:
        _print_results(run)
        _alerts(run, started)
        if settings.clickhouse.sink_enabled:
            _analytics(run)
    finally:
        run.worker.stop()
    print(f"worker log (JSON lines): {run.worker.log_path}")
    return 0


def main() -> int:
    """`make demo` (`python -m devkit.demo`): runs from a checkout, never from the wheel."""
    import logging.config

    from streams.core.logs import logging_config
    from streams.core.settings import load_settings

    settings = load_settings()
    logging.config.dictConfig(logging_config(settings.log_level))
    return run_demo(settings)


if __name__ == "__main__":
    raise SystemExit(main())
