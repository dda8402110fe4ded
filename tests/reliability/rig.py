"""The campaign's rig: a 3-node Kafka cluster, the real mint behind a fault proxy, a mint whose
melts stay PENDING, real proofs, 3 workers of one group, the ClickHouse sink as its own process,
and the steady load. `Rig.build()` starts it all, `Rig.close()` stops what it started.

Worker settings, and why:

- RF 3 and min.insync.replicas 2 for every topic the app creates (Faust's changelogs included),
  producers with acks=all (Faust's default, -1): one Kafka node may die without losing a write;
- static membership (PROOFRECON_KAFKA_INSTANCE_ID per worker) and one standby replica per table
  partition: a restarted worker takes its own partitions back, a moved partition is ready sooner;
- one findings signing key for the group (a finding written by one worker is read by another);
- the sink off in the workers and run as `proofrecon sink`, so it can be killed on its own;
- the local mint does not rate-limit 127.0.0.1 (`limiter_model=none`); the NUT-17 watch is off
  (the proxy carries no WebSocket): verdicts here rest on checkstate answers only.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from devkit.cluster import KafkaCluster, WorkerFleet, list_topics, member_settings
from devkit.load import LoadBook, LoadPlan, ProofSupply, SteadyLoad, plan_load
from devkit.mint_proxy import MintProxyProcess
from devkit.mints import PENDING_ENV, MintServer, free_port
from devkit.processes import SinkProcess, sink_offsets
from devkit.verify_state import ledger_positions, read_topic, worker_views
from devkit.wallet import CashuWallet
from streams.core.kafka import client_kwargs, delete_topics
from streams.core.settings import Settings, TopicSettings, load_settings
from tests.reliability.scale import Scale

WORKERS = 3
# Environment every worker gets beside its settings: no live watch through the proxy.
WORKER_ENV = {"PROOFRECON_WATCH_ENABLED": "false"}


def campaign_settings(
    run: str, root: Path, bootstrap: str, mints: list[str], canary: str
) -> Settings:
    topics: dict[str, Any] = {
        f: f"rel{run}.{f.replace('_', '-')}" for f in TopicSettings.topic_fields()
    }
    topics.update(
        partitions=6,
        replication_factor=3,
        min_insync_replicas=2,
        findings_signing_key=secrets.token_hex(32),
    )
    return load_settings(
        data_dir=root / "data",
        topics=topics,
        kafka={
            "bootstrap_servers": bootstrap,
            "app_id": f"proofrecon-rel-{run}",
            "standby_replicas": 1,
        },
        mint={
            "allowlist": mints,
            "limiter_model": "none",
            "requests_per_minute": 6000,
            "burst": 100,
            "canaries": f"{mints[0]}={canary}",
        },
        sweep={"enabled": True, "interval_s": 5.0, "min_age_s": 15.0},
        clickhouse={"sink_enabled": False, "batch_max_wait_s": 1.0},
        web={"port": free_port()},
    )


@dataclass
class Rig:
    scale: Scale
    root: Path
    run: str = field(default_factory=lambda: uuid.uuid4().hex[:8])
    cluster: KafkaCluster | None = None
    proxy: MintProxyProcess | None = None
    pending_mint: MintServer | None = None
    fleet: WorkerFleet | None = None
    sink: SinkProcess | None = None
    settings: Settings | None = None
    plan: LoadPlan | None = None
    book: LoadBook = field(default_factory=LoadBook)
    timings: dict[str, float] = field(default_factory=dict)
    replication: dict[str, tuple[int, int]] = field(default_factory=dict)  # topic -> (RF, min ISR)

    # --- setup -----------------------------------------------------------------------------------

    def start_infrastructure(self, mint_url: str) -> ProofSupply:
        started = time.monotonic()
        self.cluster = KafkaCluster.open(self.root / "cluster")
        self.timings["cluster_s"] = time.monotonic() - started
        self.proxy = MintProxyProcess(mint_url, self.root / "proxy.log").start()
        self.pending_mint = MintServer(self.root / "pending-mint", env=PENDING_ENV).start()
        main = CashuWallet(mint_url, self.root / "wallet").scenario(
            unspent=self.scale.unspent_proofs, spent_by_swap=6, spent_elsewhere=9, amount=2
        )
        pending = CashuWallet(self.pending_mint.url, self.root / "pending-wallet").scenario(
            pending=4
        )
        return ProofSupply(
            self.proxy.url,
            main.unspent,
            main.spent_swap,
            main.spent_elsewhere,
            self.pending_mint.url,
            pending.pending,
        )

    def start_services(self, supply: ProofSupply) -> None:
        assert self.cluster is not None and self.proxy is not None
        canary, *spent = supply.spent_elsewhere  # one spent Y proves the mint remembers
        supply.spent_elsewhere = spent
        self.plan = plan_load(
            supply,
            owners=24,
            churn_tokens=self.scale.churn_tokens,
            rng=__import__("random").Random(self.run),
        )
        self.plan.truth[canary.Y] = "SPENT"
        mints = [self.proxy.url, supply.pending_url]
        self.settings = campaign_settings(
            self.run, self.root, self.cluster.bootstrap, mints, canary.Y
        )
        members = [
            member_settings(self.settings, i, self.root, static=True) for i in range(WORKERS)
        ]
        self.fleet = WorkerFleet(members, self.root / "logs", WORKER_ENV)
        sink_web = self.settings.web.model_copy(update={"port": free_port()})
        sink_settings = self.settings.model_copy(
            update={"data_dir": self.root / "sink", "web": sink_web}
        )
        self.sink = SinkProcess(sink_settings, self.root / "logs" / "sink.log")
        started = time.monotonic()
        self.fleet.start(timeout=300)
        self.sink.start(timeout=180)
        self.timings["services_s"] = time.monotonic() - started

    def load(self, spender: CashuWallet | None) -> SteadyLoad:
        assert self.settings is not None and self.plan is not None
        return SteadyLoad(
            self.settings,
            self.plan,
            self.book,
            melts_per_s=self.scale.melts_per_s,
            token_events_per_s=self.scale.token_events_per_s,
            seed=int(self.run, 16),
            spender=spender,
        )

    async def wait_ledger_ready(self, timeout: float = 120.0) -> None:
        """Until some worker's ledger shows every registered holding (melts need it first)."""
        assert self.plan is not None and self.fleet is not None
        want = {
            (h.npub, p.Y): h
            for h in self.plan.holdings
            for p in h.proofs
            if h.melt_class.value != "low_absent"
        }
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            views = await worker_views(self.fleet.urls, want)
            if all(any(v is not None for v in seen) for seen in views.values()):
                return
            await asyncio.sleep(1.0)
        raise AssertionError("the ledger never showed every holding")

    # --- the end ---------------------------------------------------------------------------------

    async def wait_consumed(self, group: str, topics: list[str], timeout: float) -> None:
        """Until `group` has committed every partition of `topics` up to its end."""
        from aiokafka import AIOKafkaConsumer, TopicPartition

        assert self.settings is not None
        consumer = AIOKafkaConsumer(
            **client_kwargs(self.settings.kafka), group_id=group, enable_auto_commit=False
        )
        await consumer.start()
        try:
            tps = [
                TopicPartition(t, p) for t in topics for p in range(self.settings.topics.partitions)
            ]
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                ends = await consumer.end_offsets(tps)
                committed = {tp: (await consumer.committed(tp)) or 0 for tp in tps}
                behind = {
                    f"{tp.topic}/{tp.partition}": (committed[tp], ends[tp])
                    for tp in tps
                    if committed[tp] < ends[tp]
                }
                if not behind:
                    return
                await asyncio.sleep(1.0)
        finally:
            await consumer.stop()
        raise AssertionError(f"{group} behind (committed, end) after {timeout} s: {behind}")

    async def wait_ledger_caught_up(self, timeout: float) -> None:
        """Until the ledger's changelog says every wallet.token-status event was applied (the
        ledger keeps its position there, not in a consumer group)."""
        assert self.settings is not None
        changelog = f"{self.settings.kafka.app_id}-tokens-changelog"
        deadline = time.monotonic() + timeout
        behind: dict[int, tuple[int, int]] = {}
        while time.monotonic() < deadline:
            events = await read_topic(self.settings, self.settings.topics.token_status)
            last = {r.partition: r.offset for r in events}
            done = ledger_positions(await read_topic(self.settings, changelog))
            behind = {p: (done.get(p, -1), o) for p, o in last.items() if done.get(p, -1) < o}
            if not behind:
                return
            await asyncio.sleep(1.0)
        raise AssertionError(f"the ledger is behind (applied, last) after {timeout} s: {behind}")

    async def wait_sink_caught_up(self, timeout: float = 180.0) -> None:
        assert self.sink is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            ends, committed = await sink_offsets(self.sink.settings)
            if ends == committed:
                return
            await asyncio.sleep(1.0)
        raise AssertionError("the ClickHouse sink did not catch up")

    def close(self) -> None:
        for stop in (self._stop_fleet, self._stop_sink, self._stop_mints, self._drop_topics):
            try:
                stop()
            except Exception as exc:  # cleanup goes on; the test's own result stands
                print(f"cleanup: {stop.__name__} failed: {exc!r}")
        if self.cluster is not None:
            self.cluster.close()

    def _stop_fleet(self) -> None:
        if self.fleet is not None:
            self.fleet.stop_all()

    def _stop_sink(self) -> None:
        if self.sink is not None:
            self.sink.stop()

    def _stop_mints(self) -> None:
        if self.proxy is not None:
            self.proxy.stop()
        if self.pending_mint is not None:
            self.pending_mint.stop()

    def _drop_topics(self) -> None:
        if self.settings is None or self.cluster is None or self.cluster.owned:
            return  # a private cluster goes away whole
        if os.environ.get("PROOFRECON_TEST_KEEP_TOPICS"):
            return
        prefixes = (f"rel{self.run}.", self.settings.kafka.app_id)
        asyncio.run(delete_topics(self.settings.kafka, lambda n: n.startswith(prefixes)))


def mint_states(url: str, ys: list[str]) -> dict[str, str]:
    """Every Y's state, asked of the mint itself (NUT-07), never through the proxy."""
    states: dict[str, str] = {}
    for start in range(0, len(ys), 100):
        chunk = ys[start : start + 100]
        response = httpx.post(f"{url}/v1/checkstate", json={"Ys": chunk}, timeout=30)
        response.raise_for_status()
        states.update({s["Y"]: s["state"] for s in response.json()["states"]})
    return states


async def run_topics(settings: Settings, bootstrap: str) -> list[str]:
    """The topics of this run (the contract topics and Faust's changelogs)."""
    names = await list_topics(bootstrap)
    prefixes = (settings.topics.token_status.rsplit(".", 1)[0] + ".", settings.kafka.app_id)
    return [n for n in names if n.startswith(prefixes)]
