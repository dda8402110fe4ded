"""The live proof-state watch (NUT-17) in the worker: what to watch, and what the mints push.

One `WatchManager` (streams.mint.watch) per allow-listed mint that advertises NUT-17
`proof_state`; others are left to the sweep. What it watches comes from the ledger of the
partitions this worker holds: Ys the wallet DB calls pending first, then those of recent melt
requests, then unspent ones by `PROOFRECON_WATCH_UNSPENT_PRIORITY`, within the per-mint budget.
A Y leaves the watch when the DB calls it spent, its token is deleted, or its partition moves
(the watch is rebuilt from the tokens table after every recovery).

What the mint says enters the same path as the sweep's findings (`source: subscription`): states
are gathered for a moment, and a state that differs from the last one forwarded for that proof
goes to the findings agent, which classifies it on the npub's partition with the same
de-duplication, corrections and alerts. A SPENT learned live also feeds the gateway's SPENT
cache. Preflights read `fresh_states` (streams.worker.agents.melt_requests: PREFLIGHT_LIVE_STATE).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import time
import uuid
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from streams.core.domain import DbStatus, MintState, Source
from streams.core.errors import MintError
from streams.core.mint_url import normalise_or_strip
from streams.mint import Snapshot, Tier, WatchConfig, WatchManager
from streams.mint.live import Via
from streams.recon.ledger import ProofRecord, TokenRecord, split_key, token_rows
from streams.worker.findings import Finding, ObservedProof, publish_finding
from streams.worker.metrics import PrometheusWatchObserver
from streams.worker.runtime import Runtime, tables_recovered

logger = logging.getLogger("proofrecon.watch")

_GATHER_S = 0.05  # states pushed within this long go out as one finding per npub
_SNAPSHOT_DEADLINE_S = 30.0
_ADOPT_RETRY_S, _ADOPT_RETRY_MAX_S = 15.0, 300.0  # asking a mint that was down for its /v1/info
_SLICE = 5_000  # token rows read between two yields to the event loop on a rebuild


class LiveWatches:
    """The worker's `LiveTruth` (streams.worker.runtime)."""

    def __init__(self, runtime: Runtime) -> None:
        self._rt = runtime
        conf = runtime.settings.watch
        self._config = WatchConfig(
            max_filters_per_mint=conf.max_filters_per_mint,
            max_connections_per_mint=conf.max_connections_per_mint,
            messages_per_minute=conf.messages_per_minute,
            limiter_limit=conf.limiter_limit,
            keepalive_s=conf.keepalive_s,
            snapshot_interval_s=conf.snapshot_interval_s,
            fresh_max_age_s=conf.fresh_max_age_s,
        )
        self._managers: dict[str, WatchManager] = {}
        self._owners: dict[str, set[str]] = {}  # Y -> npubs whose ledger holds it (usually one)
        self._pending: set[str] = set()  # Ys the DB calls pending: they keep their tier
        self._melts: dict[str, tuple[str, float]] = {}  # Y -> (mint, melt tier until)
        self._forwarded: dict[tuple[str, str], MintState] = {}
        self._inbox: list[tuple[str, MintState, datetime]] = []
        self._wake = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []

    # --- lifecycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        observer = PrometheusWatchObserver(self._rt.metrics)
        unreachable = []
        for url in self._rt.settings.mint.allowlist:
            manager = WatchManager(
                url,
                snapshot=self._snapshotter(url),
                on_state=self._on_state,
                config=self._config_for(url),
                observer=observer,
            )
            if await manager.start():
                self._managers[manager.mint_url] = manager
            elif manager.supported is None:
                unreachable.append(manager)  # /v1/info unreadable: ask again later
            else:
                await manager.close()  # no NUT-17 proof_state: the sweep alone watches it
        self._tasks.append(asyncio.create_task(self._forward_forever()))
        self._tasks += [asyncio.create_task(self._adopt_later(m)) for m in unreachable]
        logger.info("live watch started", extra={"fields": {"mints": sorted(self._managers)}})
        if self._managers and tables_recovered(self._rt.app):
            await self.rebuild()  # recovered before the mints answered: catch up

    def _config_for(self, url: str) -> WatchConfig:
        """The shared limits, with this mint's own fixed headers (e.g. for a proxy in front of
        it): they go with its /v1/info request and every WebSocket handshake, as with HTTP."""
        headers = self._rt.settings.mint.request_headers.get(url, {})
        return dataclasses.replace(self._config, headers=tuple(headers.items()))

    async def _adopt_later(self, manager: WatchManager) -> None:
        """A mint that was down at start is watched once its /v1/info can be read."""
        delay = _ADOPT_RETRY_S
        try:
            while manager.supported is None:
                await asyncio.sleep(delay)
                delay = min(delay * 2, _ADOPT_RETRY_MAX_S)
                if await manager.start():
                    self._managers[manager.mint_url] = manager
                    logger.info(
                        "live watch started", extra={"fields": {"mints": [manager.mint_url]}}
                    )
                    if tables_recovered(self._rt.app):
                        await self.rebuild()
        finally:
            if manager.mint_url not in self._managers:
                await manager.close()

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await asyncio.gather(*(m.close() for m in self._managers.values()))

    def _snapshotter(self, url: str) -> Snapshot:
        async def snapshot(ys: list[str]) -> Mapping[str, MintState]:
            gateway = self._rt.gateways.get(url)
            return await gateway.check(ys, deadline_s=_SNAPSHOT_DEADLINE_S, source=Source.SWEEP)

        return snapshot

    # --- LiveTruth ---------------------------------------------------------------------------

    def want(self, npub: str, after: Mapping[str, ProofRecord | None], changed_at: float) -> None:
        for y, record in after.items():
            manager = self._manager_for(record)
            if record is None or record.status is DbStatus.SPENT or manager is None:
                self._unwant(npub, y)
                continue
            self._owners.setdefault(y, set()).add(npub)
            if record.status is DbStatus.PENDING:
                self._pending.add(y)
                manager.watch([y], tier=Tier.PENDING, score=changed_at)
            else:
                self._pending.discard(y)
                if y not in self._melts:
                    manager.watch([y], tier=Tier.UNSPENT, score=self._score(record, changed_at))

    def melt(self, npub: str, mint_url: str, ys: Sequence[str]) -> None:
        manager = self._managers.get(mint_url)
        if manager is None:
            return
        until = time.monotonic() + self._rt.settings.watch.melt_watch_s
        fresh = [y for y in ys if y not in self._pending]
        for y in fresh:
            self._melts[y] = (mint_url, until)
            self._owners.setdefault(y, set()).add(npub)
        manager.watch(fresh, tier=Tier.MELT, score=time.time())

    def fresh_states(self, mint_url: str, ys: Sequence[str]) -> dict[str, MintState]:
        manager = self._managers.get(mint_url)
        if manager is None:
            return {}
        return manager.live.fresh_states(ys, self._rt.settings.watch.fresh_max_age_s)

    def view(self, mint_url: str, y: str) -> dict[str, Any] | None:
        manager = self._managers.get(mint_url)
        if manager is None or y not in self._owners:
            return None
        known = manager.live.get(y)
        fresh = manager.live.fresh_state(y, self._rt.settings.watch.fresh_max_age_s)
        return {
            "watched": manager.is_watched(y),
            "state": known.state.value if known else None,
            "fresh": fresh is not None,
        }

    # --- what to watch -----------------------------------------------------------------------

    def _manager_for(self, record: ProofRecord | None) -> WatchManager | None:
        if record is None:
            return None
        return self._managers.get(normalise_or_strip(record.mint_url))

    def _score(self, record: ProofRecord, changed_at: float) -> float:
        if self._rt.settings.watch.unspent_priority == "amount":
            return float(record.amount)
        return changed_at

    def _unwant(self, npub: str, y: str) -> None:
        owners = self._owners.get(y)
        if owners is not None:
            owners.discard(npub)
            if owners:
                return  # another npub still holds it
            del self._owners[y]
        self._pending.discard(y)
        self._melts.pop(y, None)
        self._forwarded.pop((npub, y), None)
        for manager in self._managers.values():
            manager.unwatch([y])

    async def rebuild(self) -> None:
        """After a recovery: watch exactly the proofs of the partitions this worker holds now."""
        before = {(npub, y) for y, npubs in self._owners.items() for npub in npubs}
        now: set[tuple[str, str]] = set()
        for count, (key, row) in enumerate(token_rows(self._rt.tokens.items()), 1):
            token = TokenRecord.from_dict(row)
            npub, token_id = split_key(key)
            after = {y: token.proof(token_id, y) for y in token.ys}
            self.want(npub, after, changed_at=float(token.seq))
            now |= {(npub, y) for y, record in after.items() if record is not None}
            if count % _SLICE == 0:
                await asyncio.sleep(0)
        for npub, y in before - now:
            self._unwant(npub, y)

    def _demote_old_melts(self) -> None:
        now = time.monotonic()
        for y, (mint_url, until) in list(self._melts.items()):
            if until <= now:
                del self._melts[y]
                manager = self._managers.get(mint_url)
                if manager is not None and y in self._owners:
                    manager.watch([y], tier=Tier.UNSPENT, score=0.0)

    # --- what the mints push -----------------------------------------------------------------

    def _on_state(self, y: str, state: MintState, at: datetime, via: Via) -> None:
        for url, manager in self._managers.items():
            if manager.is_watched(y) or y in manager.live:
                self._learned(url, y, state, at)
        self._inbox.append((y, state, at))
        self._wake.set()

    def _learned(self, url: str, y: str, state: MintState, at: datetime) -> None:
        with contextlib.suppress(MintError):  # a mint taken off the allow-list
            self._rt.gateways.get(url).learned(y, state, at)

    async def _forward_forever(self) -> None:
        while True:
            await self._wake.wait()
            await asyncio.sleep(_GATHER_S)
            self._wake.clear()
            self._demote_old_melts()
            inbox, self._inbox = self._inbox, []
            try:
                await self._forward(inbox)
            except Exception:  # a broker hiccup must not end the watch: states come again
                logger.exception("live watch could not forward mint states")

    async def _forward(self, inbox: list[tuple[str, MintState, datetime]]) -> None:
        by_npub: dict[tuple[str, str], list[ObservedProof]] = {}
        latest: dict[tuple[str, str], datetime] = {}
        # A proof can pass through several states within one gathering (UNSPENT, PENDING,
        # SPENT during a melt): only the last one is news, and a Y appears once per finding.
        last = {y: (state, at) for y, state, at in inbox}
        for y, (state, at) in last.items():
            for npub in self._owners.get(y, ()):
                if self._forwarded.get((npub, y)) is state:
                    continue  # nothing new about this proof
                self._forwarded[(npub, y)] = state
                mint_url = self._mint_of(y)
                if mint_url is None:
                    continue
                by_npub.setdefault((npub, mint_url), []).append(ObservedProof(Y=y, state=state))
                latest[(npub, mint_url)] = max(at, latest.get((npub, mint_url), at))
        for (npub, mint_url), proofs in by_npub.items():
            finding = Finding(
                npub=npub,
                mint_url=mint_url,
                source=Source.SUBSCRIPTION,
                observed_at=latest[(npub, mint_url)],
                observation_id=uuid.uuid4().hex,  # a fresh observation, never a replay
                proofs=tuple(proofs),
            )
            await publish_finding(self._rt, finding)

    def _mint_of(self, y: str) -> str | None:
        for url, manager in self._managers.items():
            if manager.is_watched(y) or y in manager.live:
                return url
        return None


def register(runtime: Runtime) -> LiveWatches | None:
    if not runtime.settings.watch.enabled:
        return None
    live = LiveWatches(runtime)
    runtime.live = live
    runtime.on_recovered.append(live.rebuild)
    runtime.closables.append(live)

    @runtime.app.task  # type: ignore[untyped-decorator]
    async def start_live_watch() -> None:
        await live.start()

    return live
