"""The NUT-17 watch (WatchManager) against each real mint implementation.

The two push differently: Nutshell sends every subscribed Y's current state at once; CDK 0.18
sends one only for a Y it has a record of (PENDING or SPENT), nothing for a Y it never saw or
saw unspent, and may drop notifications under bursts. One code path serves both, because the
watch never reads silence as a state: shortly after every subscribe, and every
`snapshot_interval_s`, it asks the mint by checkstate.

A mint answers UNSPENT for any Y it never saw, so only proofs really SPENT or PENDING there
prove that a notification reached the right Y.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from streams.core.domain import MintState, Source
from streams.core.errors import MintUnavailable
from streams.core.settings import MintSettings
from streams.mint import MintGateway
from streams.mint.live import Via
from streams.mint.watch import WatchManager
from streams.mint.watchconfig import WatchConfig
from tests.mints.impls import NUTSHELL, MintImpl
from tests.support.watch_support import CountingObserver, Recorder, random_ys

pytestmark = [pytest.mark.stack, pytest.mark.timeout(180)]

# No periodic snapshot unless a test asks for one: what it sees came by notification, or by the
# snapshot that follows each subscribe.
QUIET = {"snapshot_interval_s": 3600.0, "fresh_max_age_s": 7200.0}


class Watch:
    """A manager with its recorder, observer and the snapshots the gateway answered."""

    def __init__(self, manager: WatchManager, recorder: Recorder, observer: CountingObserver):
        self.m = manager
        self.rec = recorder
        self.obs = observer
        self.snapshots: list[int] = []  # Ys of each answered snapshot
        self.checkstate_down = False  # while True, every snapshot fails

    def pushed(self, ys: list[str]) -> set[str]:
        """Those of `ys` the mint told us about by notification."""
        return {s.y for s in self.rec.seen if s.y in ys and s.via is Via.NOTIFICATION}


@pytest.fixture
async def watch_for(
    mint_settings: Callable[..., MintSettings],
) -> AsyncIterator[Callable[..., Any]]:
    made: list[tuple[WatchManager, MintGateway]] = []

    async def build(url: str, **cfg: Any) -> Watch:
        gateway = MintGateway(url, mint_settings(url, limiter_model="none"))
        recorder, observer = Recorder(), CountingObserver()
        watch: Watch

        async def snapshot(ys: list[str]) -> dict[str, MintState]:
            if watch.checkstate_down:
                raise MintUnavailable("checkstate withheld by the test", mint_url=url)
            states = await gateway.check(ys, source=Source.SWEEP)
            watch.snapshots.append(len(ys))
            return states

        config = WatchConfig(**{**QUIET, **cfg})
        manager = WatchManager(
            url, snapshot=snapshot, on_state=recorder, config=config, observer=observer
        )
        watch = Watch(manager, recorder, observer)
        made.append((manager, gateway))
        assert await manager.start()
        return watch

    yield build
    for manager, gateway in made:
        await manager.close()
        await gateway.close()


async def until(condition: Callable[[], bool], timeout: float = 30.0) -> None:
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0.05)


async def all_fresh(watch: Watch, ys: list[str], timeout: float = 30.0) -> None:
    """Until every Y of `ys` is watched and its state confirmed."""
    await until(lambda: len(watch.m.live.fresh_states(ys)) == len(ys), timeout)


async def test_a_spend_elsewhere_is_pushed_without_polling(
    mint_impl: MintImpl, tmp_path: Path, watch_for: Callable[..., Any]
) -> None:
    wallet = mint_impl.wallet(tmp_path / "wallet")
    proofs = await asyncio.to_thread(wallet.mint, 3)
    ys = [p.Y for p in proofs]
    watch = await watch_for(mint_impl.url)
    watch.m.watch([*ys, *random_ys(20)])
    await all_fresh(watch, ys)
    await until(lambda: sum(watch.snapshots) >= 23)  # the post-subscribe snapshot
    snapshots_before = len(watch.snapshots)

    await asyncio.to_thread(wallet.redeem_copies, proofs[:1])
    learned = await watch.rec.wait_for(ys[0], MintState.SPENT, timeout=30)

    assert learned.via is Via.NOTIFICATION
    assert len(watch.snapshots) == snapshots_before  # no checkstate in between
    assert watch.m.live.fresh_states(ys) == {
        ys[0]: MintState.SPENT,
        ys[1]: MintState.UNSPENT,
        ys[2]: MintState.UNSPENT,
    }
    assert watch.obs.counts["rejected"] == 0


async def test_silence_proves_nothing_what_the_mint_does_not_push_the_snapshot_confirms(
    mint_impl: MintImpl, watch_for: Callable[..., Any]
) -> None:
    """With checkstate withheld, only pushed states count. Nutshell pushes every Y's state on
    subscribe; CDK only the SPENT ones it knows: its unspent and unknown Ys stay unknown (never
    taken for UNSPENT) until a snapshot confirms them. (Withholding checkstate is the test's
    doing: a mint whose checkstate fails also drops its WebSockets.)"""
    spent = [p.Y for p in mint_impl.scene.spent_elsewhere]
    unspent = [p.Y for p in mint_impl.scene.unspent]
    unknown = random_ys(3)
    silent_at_cdk = unspent + unknown
    watch = await watch_for(mint_impl.url, snapshot_retry_s=0.2)
    watch.checkstate_down = True
    watch.m.watch(spent + silent_at_cdk)
    await until(lambda: watch.m.watched == len(spent + silent_at_cdk))  # subscribed and acked
    await all_fresh(watch, spent)  # pushed by both mints
    await until(lambda: watch.obs.counts["snapshot:MINT_UNAVAILABLE"] >= 1)
    if mint_impl.name == NUTSHELL:
        await all_fresh(watch, silent_at_cdk)
        assert watch.pushed(silent_at_cdk) == set(silent_at_cdk)
    else:
        assert watch.pushed(silent_at_cdk) == set()
        assert watch.m.live.fresh_states(silent_at_cdk) == {}  # unknown, not UNSPENT
    assert watch.m.live.fresh_states(spent) == dict.fromkeys(spent, MintState.SPENT)

    watch.checkstate_down = False
    await all_fresh(watch, silent_at_cdk)
    assert watch.m.live.fresh_states(silent_at_cdk) == dict.fromkeys(
        silent_at_cdk, MintState.UNSPENT
    )
    assert watch.m.live.fresh_states(spent) == dict.fromkeys(spent, MintState.SPENT)


async def test_a_real_melt_going_pending_is_pushed(
    mint_impl: MintImpl, tmp_path: Path, watch_for: Callable[..., Any]
) -> None:
    """At the private mints a melt stays in flight: PENDING, pushed by both."""
    wallet = mint_impl.wallet(tmp_path / "wallet", own=True)
    proofs = await asyncio.to_thread(wallet.mint, 2)
    ys = [p.Y for p in proofs]
    watch = await watch_for(mint_impl.own.url)
    watch.m.watch(ys)
    await all_fresh(watch, ys)
    await until(lambda: sum(watch.snapshots) >= 2)
    snapshots_before = len(watch.snapshots)

    await asyncio.to_thread(wallet.melt, proofs)
    for y in ys:
        learned = await watch.rec.wait_for(y, MintState.PENDING, timeout=30)
        assert learned.via is Via.NOTIFICATION
    assert len(watch.snapshots) == snapshots_before
    assert watch.m.live.fresh_states(ys) == dict.fromkeys(ys, MintState.PENDING)


async def test_a_burst_of_spends_is_all_known_once_snapshots_come_round(
    mint_impl: MintImpl, tmp_path: Path, watch_for: Callable[..., Any]
) -> None:
    """Fifty proofs spent in one swap: whatever notifications a mint drops (CDK's channel does
    under bursts), the periodic snapshot makes every SPENT known; how each was learned is
    printed with -s."""
    wallet = mint_impl.wallet(tmp_path / "wallet")
    proofs = await asyncio.to_thread(wallet.mint, 50, 1)
    ys = [p.Y for p in proofs]
    watch = await watch_for(mint_impl.url, snapshot_interval_s=2.0)
    watch.m.watch(ys)
    await all_fresh(watch, ys)

    await asyncio.to_thread(wallet.swap, proofs)
    await until(lambda: watch.m.live.fresh_states(ys) == dict.fromkeys(ys, MintState.SPENT), 60)
    notified = [s for s in watch.rec.seen if s.via is Via.NOTIFICATION]
    pushed = {s.y for s in notified if s.state is MintState.SPENT}
    print(f"\n{mint_impl}: {len(pushed)} of {len(ys)} spends pushed, the rest by snapshot")
    assert watch.obs.counts["rejected"] == 0


async def test_2500_ys_are_spread_over_connections_and_messages_and_none_refused(
    mint_impl: MintImpl, tmp_path: Path, watch_for: Callable[..., Any]
) -> None:
    """Within both mints' limits (Nutshell: 1000 filters per connection and message; CDK 0.18:
    100 subscriptions of 1000 filters per connection), with the default pacing."""
    wallet = mint_impl.wallet(tmp_path / "wallet")
    proofs = await asyncio.to_thread(wallet.mint, 4)
    await asyncio.to_thread(wallet.redeem_copies, proofs[:2])
    real = [p.Y for p in proofs]
    ys = [*real, *random_ys(2500 - len(real))]
    started = time.monotonic()
    watch = await watch_for(mint_impl.url)
    watch.m.watch(ys)
    await all_fresh(watch, ys, timeout=90)

    assert sorted(n for sizes in watch.m.layout().values() for n in sizes) == [502, 999, 999]
    assert watch.obs.counts["sent:connect"] == 3
    assert watch.obs.counts["sent:subscribe"] == 3
    assert watch.obs.counts["rejected"] == 0
    assert watch.m.live.fresh_states(real) == {
        real[0]: MintState.SPENT,
        real[1]: MintState.SPENT,
        real[2]: MintState.UNSPENT,
        real[3]: MintState.UNSPENT,
    }
    print(f"\n{mint_impl}: 2500 Ys watched and confirmed in {time.monotonic() - started:.1f} s")
