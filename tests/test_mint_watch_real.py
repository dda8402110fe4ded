"""The NUT-17 watch against real Nutshell 0.20.2 mints, with proofs made and spent by Nutshell's
own wallet: the stack's mint (127.0.0.1:3338, never restarted here) and mints of our own
(tests/support/mint_server.py) where a test needs PENDING melts, a restart or a short idle limit.

A mint answers UNSPENT for any Y it never saw, so only proofs really SPENT or PENDING at the
mint prove that a notification reached the right Y.

The detection delay (median and p95 over 20 spends) is printed by
`.venv/bin/pytest tests/test_mint_watch_real.py -k detection_delay -s`.
"""

from __future__ import annotations

import asyncio
import json
import os
import statistics
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from devkit.mints import PENDING_ENV, MintServer
from streams.core.domain import MintState, Source
from streams.core.settings import MintSettings
from streams.mint import MintGateway
from streams.mint.live import Via
from streams.mint.watch import WatchManager
from streams.mint.watchconfig import WatchConfig
from tests.support.watch_support import (
    CountingObserver,
    Recorder,
    Spender,
    WatchWallet,
    random_ys,
)

pytestmark = pytest.mark.stack

# No periodic snapshot during a test unless it asks for one: what it sees came by notification.
QUIET = {"snapshot_interval_s": 3600.0, "fresh_max_age_s": 7200.0}


class Watch:
    """A manager with its recorder, observer and a counted gateway snapshot."""

    def __init__(self, manager: WatchManager, recorder: Recorder, observer: CountingObserver):
        self.m = manager
        self.rec = recorder
        self.obs = observer
        self.snapshots: list[tuple[float, int]] = []  # (when, Ys) of answered snapshots


@pytest.fixture
async def watch_for(
    mint_settings: Callable[..., MintSettings],
) -> AsyncIterator[Callable[..., Any]]:
    made: list[tuple[WatchManager, MintGateway]] = []

    async def build(url: str, *, headers: dict[str, str] | None = None, **cfg: Any) -> Watch:
        gateway = MintGateway(url, mint_settings(url, limiter_model="none"))
        recorder, observer = Recorder(), CountingObserver()
        config = WatchConfig(**{**QUIET, **cfg, "headers": tuple((headers or {}).items())})
        watch: Watch

        async def snapshot(ys: list[str]) -> dict[str, MintState]:
            states = await gateway.check(ys, source=Source.SWEEP)
            watch.snapshots.append((time.monotonic(), len(ys)))  # answered ones only
            return states

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


async def all_fresh(watch: Watch, ys: list[str], timeout: float = 30.0) -> None:
    """Wait until every Y of `ys` is watched and confirmed."""
    async with asyncio.timeout(timeout):
        while len(watch.m.live.fresh_states(ys)) < len(ys):
            await asyncio.sleep(0.05)


async def snapshotted(watch: Watch, ys: int, timeout: float = 30.0) -> None:
    """Wait until checkstate snapshots covered at least `ys` Ys (the post-subscribe one)."""
    async with asyncio.timeout(timeout):
        while sum(n for _, n in watch.snapshots) < ys:
            await asyncio.sleep(0.05)


def fake_ip(prefix: str) -> str:
    """A client address of our own for the mint's limiter (it trusts X-Forwarded-For from
    127.0.0.1, which is itself exempt). The limiter remembers an address for a minute after its
    last message: tests that must not be refused and the control that floods its address draw
    from different ranges."""
    return f"{prefix}.{int.from_bytes(os.urandom(1), 'big') % 250 + 2}"


# --- the stack's mint ---------------------------------------------------------------------------


async def test_a_proof_redeemed_by_another_wallet_is_reported_spent_without_polling(
    mint_url: str, tmp_path: Path, watch_for: Callable[..., Any]
) -> None:
    wallet = WatchWallet(mint_url, tmp_path / "wallet")
    proofs = await asyncio.to_thread(wallet.mint, 3)
    ys = [p.Y for p in proofs]
    watch = await watch_for(mint_url)
    watch.m.watch([*ys, *random_ys(20)])
    await all_fresh(watch, ys)
    await snapshotted(watch, 23)
    snapshots_before = len(watch.snapshots)

    await asyncio.to_thread(wallet.redeem_copies, proofs[:1])
    redeemed_at = time.monotonic()
    learned = await watch.rec.wait_for(ys[0], MintState.SPENT, timeout=5)

    assert learned.via is Via.NOTIFICATION
    assert learned.mono - redeemed_at < 5
    assert len(watch.snapshots) == snapshots_before  # no checkstate in between
    assert watch.m.live.fresh_states(ys) == {
        ys[0]: MintState.SPENT,
        ys[1]: MintState.UNSPENT,
        ys[2]: MintState.UNSPENT,
    }
    assert watch.obs.counts["rejected"] == 0


async def test_2500_ys_are_spread_over_messages_and_connections_within_the_rate_limit(
    mint_url: str, tmp_path: Path, watch_for: Callable[..., Any]
) -> None:
    """With Nutshell's real WebSocket limiter on (a client address of our own), defaults."""
    wallet = WatchWallet(mint_url, tmp_path / "wallet")
    proofs = await asyncio.to_thread(wallet.mint, 4)
    await asyncio.to_thread(wallet.redeem_copies, proofs[:2])
    real = [p.Y for p in proofs]
    ys = [*real, *random_ys(2500 - len(real))]
    watch = await watch_for(mint_url, headers={"X-Forwarded-For": fake_ip("198.51.100")}, **QUIET)
    watch.m.watch(ys)
    await all_fresh(watch, ys, timeout=60)

    layout = watch.m.layout()
    assert len(layout) == 3
    assert sorted(n for sizes in layout.values() for n in sizes) == [
        502,
        999,
        999,
    ]  # 999 per connection: one filter kept for the keep-alive
    assert watch.obs.counts["sent:subscribe"] == 3
    assert watch.obs.counts["sent:connect"] == 3
    assert watch.obs.counts["rejected"] == 0  # in particular no rate-limit error (id 0)
    assert watch.m.live.fresh_states(real) == {
        real[0]: MintState.SPENT,
        real[1]: MintState.SPENT,
        real[2]: MintState.UNSPENT,
        real[3]: MintState.UNSPENT,
    }
    await snapshotted(watch, 2500)  # every subscribe is confirmed by checkstate as well
    assert sum(n for _, n in watch.snapshots) == 2500


async def test_the_mints_websocket_limiter_is_really_on_for_such_a_client(mint_url: str) -> None:
    """The control for the test above: 25 quick messages from one address get refused."""
    url = mint_url.replace("http", "ws") + "/v1/ws"
    refused = 0
    async with (
        aiohttp.ClientSession() as session,
        session.ws_connect(url, headers={"X-Forwarded-For": fake_ip("203.0.113")}) as ws,
    ):
        for i in range(1, 26):
            params = {"kind": "proof_state", "subId": f"s{i}", "filters": random_ys(1)}
            await ws.send_json({"jsonrpc": "2.0", "id": i, "method": "subscribe", "params": params})
        async with asyncio.timeout(10):
            while refused == 0:
                msg = json.loads((await ws.receive()).data)
                refused += "error" in msg and msg["id"] == 0
    assert refused >= 1


async def test_detection_delay_over_20_spends(
    mint_url: str, tmp_path: Path, watch_for: Callable[..., Any]
) -> None:
    """How long after a spend at the mint the watch reports it (printed with -s)."""
    spender = await asyncio.to_thread(Spender, mint_url, tmp_path / "spender", 20)
    with spender:
        watch = await watch_for(mint_url)
        watch.m.watch(spender.ys)
        await all_fresh(watch, spender.ys)
        from_start, from_answer = [], []
        for i, y in enumerate(spender.ys):
            spend = await asyncio.to_thread(spender.spend, i)
            learned = await watch.rec.wait_for(y, MintState.SPENT, timeout=5)
            assert learned.via is Via.NOTIFICATION
            from_start.append(learned.at.timestamp() - spend.started)
            from_answer.append(learned.at.timestamp() - spend.finished)
    ms = sorted(d * 1000 for d in from_start)
    p95 = statistics.quantiles(ms, n=20)[-1]
    print(
        f"\ndetection delay over {len(ms)} spends, from the swap request: "
        f"median {statistics.median(ms):.1f} ms, p95 {p95:.1f} ms, max {ms[-1]:.1f} ms; "
        f"from the swap's answer: median {statistics.median(from_answer) * 1000:.1f} ms"
    )


# --- mints of our own ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def pending_watch_mint(tmp_path_factory: pytest.TempPathFactory) -> Any:
    with MintServer(tmp_path_factory.mktemp("watch-pending-mint"), env=PENDING_ENV) as server:
        yield server


async def test_a_real_melt_going_pending_is_reported(
    pending_watch_mint: MintServer, tmp_path: Path, watch_for: Callable[..., Any]
) -> None:
    wallet = WatchWallet(pending_watch_mint.url, tmp_path / "wallet")
    proofs = await asyncio.to_thread(wallet.mint, 2)
    ys = [p.Y for p in proofs]
    watch = await watch_for(pending_watch_mint.url)
    watch.m.watch(ys)
    await all_fresh(watch, ys)
    await snapshotted(watch, 2)
    snapshots_before = len(watch.snapshots)

    await asyncio.to_thread(wallet.melt, proofs)
    for y in ys:
        learned = await watch.rec.wait_for(y, MintState.PENDING, timeout=5)
        assert learned.via is Via.NOTIFICATION
    assert len(watch.snapshots) == snapshots_before
    assert watch.m.live.fresh_states(ys) == dict.fromkeys(ys, MintState.PENDING)


async def test_a_restarted_mint_is_rewatched_and_a_change_while_down_reported(
    tmp_path: Path, watch_for: Callable[..., Any]
) -> None:
    """A melt left PENDING settles while the mint restarts (its backend now says SETTLED):
    the watch reconnects, resubscribes, re-snapshots, and reports SPENT."""
    data = tmp_path / "mint"
    mint = MintServer(data, env=PENDING_ENV).start()
    try:
        wallet = WatchWallet(mint.url, tmp_path / "wallet")
        proofs = await asyncio.to_thread(wallet.mint, 2)
        await asyncio.to_thread(wallet.melt, proofs[:1])
        pending, unspent = proofs[0].Y, proofs[1].Y
        watch = await watch_for(mint.url, backoff_initial_s=0.5, backoff_max_s=2.0)
        watch.m.watch([pending, unspent])
        await all_fresh(watch, [pending, unspent])
        await snapshotted(watch, 2)
        assert watch.m.live.fresh_state(pending) is MintState.PENDING

        await asyncio.to_thread(mint.stop)
        async with asyncio.timeout(5):
            while watch.m.live.fresh(pending):
                await asyncio.sleep(0.05)  # no connection: nothing is known now
        await asyncio.sleep(3)  # reconnects fail meanwhile, backing off
        snapshots_before = len(watch.snapshots)
        settled = {**PENDING_ENV, "FAKEWALLET_PAYMENT_STATE": "SETTLED"}
        mint = MintServer(data, env=settled, port=mint.port)
        await asyncio.to_thread(mint.start)  # settles the pending melt at startup

        await watch.rec.wait_for(pending, MintState.SPENT, timeout=30)
        await snapshotted(watch, 4)  # re-snapshotted after reconnecting
        await all_fresh(watch, [pending, unspent])
        assert watch.m.live.fresh_states([pending, unspent]) == {
            pending: MintState.SPENT,
            unspent: MintState.UNSPENT,
        }
        assert watch.obs.counts["reconnect:lost"] == 1
        assert len(watch.snapshots) > snapshots_before
        assert watch.obs.counts["sent:connect"] >= 3  # failed attempts while it was down
    finally:
        await asyncio.to_thread(mint.stop)


@pytest.fixture(scope="module")
def impatient_mint(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """A mint that closes a WebSocket after 3 s without a message from its client."""
    env = {"MINT_WEBSOCKET_READ_TIMEOUT": "3"}
    with MintServer(tmp_path_factory.mktemp("watch-idle-mint"), env=env) as server:
        yield server


async def test_keepalive_keeps_a_real_mints_socket_open_past_its_idle_limit(
    impatient_mint: MintServer, watch_for: Callable[..., Any]
) -> None:
    # 127.0.0.1 is exempt from the mint's limiter: only our own bucket paces, and a keep-alive a
    # second needs more than the default 10 messages a minute.
    short = {"limiter_model": "none", "mint_idle_timeout_s": 3.0, "request_timeout_s": 1.0}
    watch = await watch_for(
        impatient_mint.url, keepalive_s=1.0, messages_per_minute=120, message_burst=10, **short
    )
    watch.m.watch(random_ys(3))
    await asyncio.sleep(1)
    sessions = set(watch.m.layout())
    await asyncio.sleep(10)
    assert set(watch.m.layout()) == sessions  # the same socket throughout
    assert watch.obs.counts["sent:connect"] == 1
    assert watch.obs.counts["reconnect:lost"] == 0
    assert watch.obs.counts["sent:keepalive"] >= 8
    assert watch.obs.counts["rejected"] == 0  # every keep-alive answered OK
    assert watch.m.watched == 3


async def test_without_keepalive_a_real_mint_closes_the_socket_and_the_watch_reconnects(
    impatient_mint: MintServer, watch_for: Callable[..., Any]
) -> None:
    config = {
        "limiter_model": "none",
        "keepalive_s": 100.0,
        "mint_idle_timeout_s": 1000.0,
        "messages_per_minute": 120,
    }
    watch = await watch_for(impatient_mint.url, backoff_initial_s=0.2, **config)
    ys = random_ys(3)
    watch.m.watch(ys)
    await asyncio.sleep(10)
    assert watch.obs.counts["reconnect:lost"] >= 2  # closed after 3 s idle, every time
    await all_fresh(watch, ys)
