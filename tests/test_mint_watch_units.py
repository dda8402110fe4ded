"""The NUT-17 watch's parts, without a real mint: wire protocol, message budget, LiveStates,
planner, config, and the manager against an in-memory mint on virtual time.

The in-memory mint (tests/support/fake_ws_mint.py) behaves like Nutshell 0.20.2 by default and
like CDK 0.18 with `cdk=True`; it exists for what a real Nutshell cannot be made to show on cue:
CDK's missing initial states, dropped notifications, a refused subscribe, hours of pacing.
tests/test_mint_watch_real.py runs the same watch against real Nutshell mints.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import random
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import pytest

from streams.core.cashu import y_from_secret
from streams.core.domain import MintState
from streams.mint import nut17
from streams.mint.connection import MessageDropped, WatchConnection
from streams.mint.limiter import LimiterSpec
from streams.mint.live import LiveStates, Via
from streams.mint.snapshots import SnapshotQueue
from streams.mint.watch import WatchManager
from streams.mint.watchconfig import WatchConfig
from streams.mint.watchplan import (
    Close,
    Open,
    PlanLimits,
    Rebuild,
    Recycle,
    Subscribe,
    Tier,
    Unsubscribe,
    WantedSet,
    plan,
)
from streams.mint.wspacing import MessageBudget
from tests.support.clock import FakeClock
from tests.support.fake_ws_mint import FakeSocket, FakeWsMint
from tests.support.virtual_time import run_virtual
from tests.support.watch_support import CountingObserver, Recorder, StatesSnapshot, random_ys

MINT = "http://mint.test"
CHURN_STEPS = 3600 // 5
Y1 = y_from_secret("proofrecon watch test")
NOW = datetime(2025, 1, 1, tzinfo=UTC)
NUTSHELL_INFO: dict[str, Any] = {
    "name": "Cashu mint",
    "version": "Nutshell/0.20.2",
    "nuts": {
        "7": {"supported": True},
        "17": {
            "supported": [
                {
                    "method": "bolt11",
                    "unit": "sat",
                    "commands": ["bolt11_melt_quote", "proof_state", "bolt11_mint_quote"],
                }
            ]
        },
        "29": {"supported": True, "max_batch_size": 1000, "methods": ["bolt11"]},
    },
}


# --- nut17: the wire ----------------------------------------------------------------------------


def test_requests_are_nut17_json_rpc() -> None:
    assert json.loads(nut17.subscribe_request(3, "s1", [Y1])) == {
        "jsonrpc": "2.0",
        "id": 3,
        "method": "subscribe",
        "params": {"kind": "proof_state", "subId": "s1", "filters": [Y1]},
    }
    assert json.loads(nut17.unsubscribe_request(4, "s1")) == {
        "jsonrpc": "2.0",
        "id": 4,
        "method": "unsubscribe",
        "params": {"subId": "s1"},
    }


@pytest.mark.parametrize(
    ("mint_url", "expected"),
    [
        ("http://127.0.0.1:3338", "ws://127.0.0.1:3338/v1/ws"),
        ("https://Mint.Example/", "wss://mint.example/v1/ws"),
        ("https://mint.example/Cashu", "wss://mint.example/Cashu/v1/ws"),
    ],
)
def test_ws_url(mint_url: str, expected: str) -> None:
    assert nut17.ws_url(mint_url) == expected


def test_a_valid_notification_is_read_and_its_y_lowercased() -> None:
    text = json.dumps(
        {
            "jsonrpc": "2.0",
            "method": "subscribe",
            "params": {"subId": "s", "payload": {"Y": Y1.upper(), "state": "SPENT"}},
        }
    )
    assert nut17.parse_message(text) == nut17.Notification("s", Y1, MintState.SPENT, None)


def _note(**payload: Any) -> str:
    base: dict[str, Any] = {"Y": Y1, "state": "SPENT", "witness": None}
    base.update(payload)
    params = {"subId": "s", "payload": base}
    return json.dumps({"jsonrpc": "2.0", "method": "subscribe", "params": params})


@pytest.mark.parametrize(
    "text",
    [
        "not json",
        "[]",
        json.dumps({"jsonrpc": "1.0", "method": "subscribe", "params": {}}),
        json.dumps({"jsonrpc": "2.0", "method": "notify", "params": {}}),
        json.dumps({"jsonrpc": "2.0", "method": "subscribe", "params": {"payload": {}}}),
        _note(state="spent"),
        _note(state="UNKNOWN"),
        _note(state=None),
        _note(Y="02" + "11" * 31),
        _note(Y="04" + "11" * 32),
        _note(Y="02" + "zz" * 32),
        _note(Y="02" + "00" * 32),  # the right shape, but not a point on the curve
        _note(witness=5),
        json.dumps({"jsonrpc": "2.0", "result": {"status": "OK", "subId": "s"}, "id": -1}),
        json.dumps({"jsonrpc": "2.0", "result": {"status": "NO", "subId": "s"}, "id": 1}),
        json.dumps({"jsonrpc": "2.0", "error": {"code": "x", "message": "m"}, "id": 1}),
        json.dumps({"jsonrpc": "2.0", "id": 1}),
    ],
)
def test_anything_off_spec_is_malformed(text: str) -> None:
    assert isinstance(nut17.parse_message(text), nut17.Malformed)


def test_responses_and_errors_carry_their_request_id() -> None:
    ok = {"jsonrpc": "2.0", "result": {"status": "OK", "subId": "s"}, "id": 7}
    assert nut17.parse_message(json.dumps(ok)) == nut17.Response(7, "s")
    err = {"jsonrpc": "2.0", "error": {"code": -32603, "message": "Max"}, "id": "8"}
    assert nut17.parse_message(json.dumps(err)) == nut17.ErrorResponse(8, -32603, "Max")
    dropped = {"jsonrpc": "2.0", "error": {"code": -32000, "message": "Rate limit"}, "id": 0}
    assert nut17.parse_message(json.dumps(dropped)) == nut17.ErrorResponse(
        None, -32000, "Rate limit"
    )


def test_proof_state_support_is_read_from_info() -> None:
    assert nut17.supports_proof_state(NUTSHELL_INFO)
    quotes_only = {"nuts": {"17": {"supported": [{"commands": ["bolt11_mint_quote"]}]}}}
    infos: list[object] = [quotes_only, {"nuts": {"7": {"supported": True}}}, {"nuts": []}, None]
    for info in infos:
        assert not nut17.supports_proof_state(info)


# --- the message budget -----------------------------------------------------------------------


def test_budget_paces_at_its_rate_after_the_burst() -> None:
    clock = FakeClock()
    budget = MessageBudget(messages_per_minute=10, burst=3, limiter=None, clock=clock)
    assert [budget.try_take() for _ in range(4)] == [True, True, True, False]
    assert budget.wait_time() == pytest.approx(6.0)
    clock.advance(6.0)
    assert budget.try_take()


def test_budget_keeps_a_quiet_minute_after_a_session_of_15_under_an_elastic_limit() -> None:
    clock = FakeClock()
    spec = LimiterSpec(model="elastic", limit=20, window_s=60, margin=0.25, slack_s=1.0)
    budget = MessageBudget(messages_per_minute=600, burst=100, limiter=spec, clock=clock)
    taken = 0
    while budget.try_take():
        taken += 1
    assert taken == 15
    assert budget.wait_time() == pytest.approx(61.05)  # window + the mint's read slack + clock
    clock.advance(61.1)
    assert budget.try_take()


def test_a_refused_message_spends_the_window() -> None:
    clock = FakeClock()
    spec = LimiterSpec(model="elastic", limit=20, window_s=60, margin=0.25, slack_s=1.0)
    budget = MessageBudget(messages_per_minute=600, burst=100, limiter=spec, clock=clock)
    assert budget.try_take()
    budget.note_refused()
    assert not budget.try_take()
    assert budget.wait_time() > 60


# --- LiveStates -----------------------------------------------------------------------------------


def test_a_state_is_fresh_only_on_its_live_session_and_within_its_age() -> None:
    clock = FakeClock()
    watching = {Y1: "sub-a"}
    live = LiveStates(watching.get, default_max_age_s=10, clock=clock)
    assert not live.fresh(Y1)
    live.confirm(Y1, MintState.UNSPENT, via=Via.SNAPSHOT, subscription="sub-a", at=NOW)
    assert live.fresh_state(Y1.upper()) is MintState.UNSPENT
    clock.advance(10.5)
    assert not live.fresh(Y1)
    assert live.fresh(Y1, max_age_s=11)
    watching[Y1] = "sub-b"  # resubscribed (or reconnected): unknown until confirmed again
    assert not live.fresh(Y1, max_age_s=60)
    assert live.get(Y1) is not None  # the last state is still there, just not known truth


def test_spent_is_final_in_live_states() -> None:
    live = LiveStates({Y1: "s"}.get, default_max_age_s=10, clock=FakeClock())
    assert live.confirm(Y1, MintState.SPENT, via=Via.NOTIFICATION, subscription="s", at=NOW)
    assert live.is_stale(Y1, MintState.PENDING)
    assert not live.confirm(Y1, MintState.UNSPENT, via=Via.NOTIFICATION, subscription="s", at=NOW)
    assert live.fresh_states([Y1]) == {Y1: MintState.SPENT}
    live.forget([Y1])
    assert Y1 not in live


# --- snapshot scheduling --------------------------------------------------------------------------


def test_new_subscriptions_are_snapshotted_first_after_a_short_delay() -> None:
    clock = FakeClock()
    queue = SnapshotQueue(interval_s=100, delay_s=0.5, batch_size=2, clock=clock)
    queue.start()
    watched = {"a", "b", "c", "old"}
    queue.subscribed(["a", "b", "c"])
    assert queue.next_batch(watched.__contains__, lambda: sorted(watched)) == []
    assert queue.wait_s() == pytest.approx(0.5)
    clock.advance(0.5)
    assert queue.next_batch(watched.__contains__, lambda: sorted(watched)) == ["a", "b"]
    queue.failed(["a", "b"])  # no answer: first in line again
    watched.discard("c")  # lost its subscription meanwhile: skipped
    assert queue.next_batch(watched.__contains__, lambda: sorted(watched)) == ["a", "b"]
    assert queue.next_batch(watched.__contains__, lambda: sorted(watched)) == []
    clock.advance(100)  # a periodic round of everything watched
    batches = [queue.next_batch(watched.__contains__, lambda: sorted(watched)) for _ in range(3)]
    assert batches == [["a", "b"], ["old"], []]


# --- the planner ----------------------------------------------------------------------------------


def test_wanted_set_ranks_tiers_then_score_then_age() -> None:
    wanted = WantedSet()
    wanted.add(["a", "b"], Tier.UNSPENT, 1.0)
    wanted.add(["c"], Tier.UNSPENT, 5.0)
    wanted.add(["d"], Tier.MELT, 0.0)
    wanted.add(["e"], Tier.PENDING, 0.0)
    assert wanted.top(10) == ["e", "d", "c", "a", "b"]
    # Re-watched with a new priority; among equals it keeps its place in line (watched first).
    wanted.add(["b"], Tier.PENDING, 0.0)
    assert wanted.top(3) == ["b", "e", "d"]
    assert wanted.remove(["e", "zz"]) == ["e"]
    assert wanted.top(2) == ["b", "d"]


class View:
    def __init__(self, session: int, subs: dict[str, frozenset[str]] | None = None) -> None:
        self.session = session
        self.alive = True
        self.full = False
        self.subscriptions = subs or {}
        self.slots_used: set[str] = {y for ys in self.subscriptions.values() for y in ys}


LIMITS = PlanLimits(
    max_connections=2,
    slots_per_connection=5,
    filters_per_message=3,
    max_subscriptions_per_connection=10,
    rebuild_dead_fraction=0.5,
)


def test_plan_opens_then_fills_in_messages_of_the_per_message_limit() -> None:
    ranked = [f"y{i}" for i in range(8)]
    assert plan(ranked, {}, [], LIMITS) == Open()
    assert plan(ranked, {}, [], LIMITS, opening=1) is None
    conn = View(1)
    assert plan(ranked, {}, [conn], LIMITS) == Subscribe(1, ("y0", "y1", "y2"))
    conn.subscriptions = {"s1": frozenset(ranked[:3])}
    conn.slots_used = set(ranked[:3])
    placed = dict.fromkeys(ranked[:3], 1)
    assert plan(ranked, placed, [conn], LIMITS) == Subscribe(1, ("y3", "y4"))  # 2 slots left


def test_plan_recycles_the_connection_whose_slots_are_wasted() -> None:
    a = View(1, {"s1": frozenset({"y0", "y1", "old1", "old2", "old3"})})
    b = View(2, {"s2": frozenset({"y2", "y3", "y4", "y5", "y6"})})
    placed = {"y0": 1, "y1": 1, "y2": 2, "y3": 2, "y4": 2, "y5": 2, "y6": 2}
    ranked = [*placed, "new"]
    assert plan(ranked, placed, [a, b], LIMITS) == Recycle(1)


def test_plan_tidies_dead_subscriptions_and_empty_connections() -> None:
    a = View(1, {"dead": frozenset({"x1", "x2"}), "live": frozenset({"y0", "y1", "y2"})})
    placed = {"y0": 1, "y1": 1, "y2": 1}
    assert plan(["y0", "y1", "y2"], placed, [a], LIMITS) == Unsubscribe(1, "dead")
    a.subscriptions = {"live": frozenset({"y0", "y1", "y2"})}
    assert plan(["y0"], {"y0": 1}, [a], LIMITS) == Rebuild(1, "live", ("y0",))
    empty = View(2)
    a.subscriptions = {"live": frozenset({"y0"})}
    assert plan(["y0"], {"y0": 1}, [a, empty], LIMITS) == Close(2)


def test_config_refuses_a_budget_its_connections_cannot_hold() -> None:
    WatchConfig()  # the defaults are consistent
    with pytest.raises(ValueError, match="connections hold"):
        WatchConfig(max_filters_per_mint=5000, max_connections_per_mint=4)
    with pytest.raises(ValueError, match="idle timeout"):
        WatchConfig(keepalive_s=590)
    with pytest.raises(ValueError):
        WatchConfig(backoff_initial_s=-1)


# --- one connection -------------------------------------------------------------------------------


class ConnHooks:
    def __init__(self) -> None:
        self.notes: list[nut17.Notification] = []
        self.rejections: list[str] = []
        self.kinds: list[str] = []
        self.refusals = 0
        self.losses = 0

    def notified(self, conn: WatchConnection, note: nut17.Notification) -> None:
        self.notes.append(note)

    def rejected(self, conn: WatchConnection, reason: str) -> None:
        self.rejections.append(reason)

    def sent(self, conn: WatchConnection, kind: str) -> None:
        self.kinds.append(kind)

    def refused(self, conn: WatchConnection) -> None:
        self.refusals += 1

    def lost(self, conn: WatchConnection) -> None:
        self.losses += 1


def _connection(mint: FakeWsMint, hooks: ConnHooks, **kw: Any) -> WatchConnection:
    budget = MessageBudget(messages_per_minute=600, burst=50, limiter=None)
    return WatchConnection(
        "ws://mint.test/v1/ws",
        connect=mint.connect,
        budget=budget,
        hooks=hooks,
        request_timeout_s=kw.get("request_timeout_s", 5.0),
        keepalive_s=kw.get("keepalive_s", 100.0),
        rng=random.Random(1),
    )


def test_connection_uses_only_valid_notifications_for_its_own_subscriptions() -> None:
    async def scenario() -> None:
        mint, hooks = FakeWsMint(), ConnHooks()
        conn = _connection(mint, hooks)
        await conn.open()
        y2 = random_ys(1)[0]
        sub_id = await conn.subscribe([Y1])
        await asyncio.sleep(0.01)
        assert [n.y for n in hooks.notes] == [Y1]  # the initial state
        sock: FakeSocket = mint.sockets[0]
        sock.push(json.loads(_note(state="bogus")))
        sock.push(
            {
                "jsonrpc": "2.0",
                "method": "subscribe",
                "params": {"subId": "not-ours", "payload": {"Y": Y1, "state": "SPENT"}},
            }
        )
        sock.push(
            {
                "jsonrpc": "2.0",
                "method": "subscribe",
                "params": {"subId": sub_id, "payload": {"Y": y2, "state": "SPENT"}},
            }
        )
        await asyncio.sleep(0.01)
        assert len(hooks.notes) == 1
        assert len(hooks.rejections) == 3
        mint.set_state(Y1, MintState.SPENT)
        await asyncio.sleep(0.01)
        assert hooks.notes[-1] == nut17.Notification(sub_id, Y1, MintState.SPENT, None)
        await conn.unsubscribe(sub_id)
        sock.push(json.loads(_note().replace('"s"', json.dumps(sub_id))))
        await asyncio.sleep(0.01)
        assert len(hooks.rejections) == 3  # a late notification of an old subscription: ignored
        await conn.close()

    run_virtual(scenario())


def test_an_error_naming_no_request_fails_what_waits_and_reports_a_refusal() -> None:
    async def scenario() -> None:
        mint, hooks = FakeWsMint(rate_limit=1), ConnHooks()  # the connect takes the only hit
        conn = _connection(mint, hooks)
        await conn.open()
        with pytest.raises(MessageDropped):
            await conn.subscribe([Y1])
        assert hooks.refusals == 1
        assert conn.alive
        await conn.close()

    run_virtual(scenario())


def test_a_request_without_answer_closes_the_connection() -> None:
    async def scenario() -> None:
        mint, hooks = FakeWsMint(), ConnHooks()
        conn = _connection(mint, hooks, request_timeout_s=2.0)
        await conn.open()
        mint.handle = lambda sock, text: None  # type: ignore[method-assign]
        with pytest.raises(Exception, match="subscribe"):
            await conn.subscribe([Y1])
        assert not conn.alive
        assert hooks.losses == 1

    run_virtual(scenario())


# --- the manager, on virtual time -----------------------------------------------------------------


def _manager(
    mint: FakeWsMint, recorder: Recorder, observer: CountingObserver, **cfg: Any
) -> tuple[WatchManager, StatesSnapshot]:
    snapshot = StatesSnapshot(mint.states)
    config = WatchConfig(**{"snapshot_interval_s": 3600.0, **cfg})
    loop = asyncio.get_running_loop()
    manager = WatchManager(
        MINT,
        snapshot=snapshot,
        on_state=recorder,
        config=config,
        observer=observer,
        connect=mint.connect,
        clock=loop.time,
        rng=random.Random(7),
    )
    return manager, snapshot


Scenario = Callable[
    [FakeWsMint, WatchManager, Recorder, CountingObserver, StatesSnapshot], Awaitable[None]
]


def _run(scenario: Scenario, *, mint: FakeWsMint | None = None, **cfg: Any) -> None:
    async def main() -> None:
        fake = mint or FakeWsMint()
        loop = asyncio.get_running_loop()
        recorder, observer = Recorder(loop.time), CountingObserver()
        manager, snapshot = _manager(fake, recorder, observer, **cfg)
        assert await manager.start(NUTSHELL_INFO)
        try:
            await scenario(fake, manager, recorder, observer, snapshot)
        finally:
            await manager.close()

    run_virtual(main())


async def _settle(manager: WatchManager, seconds: float = 30.0) -> None:
    await asyncio.sleep(seconds)


def test_2500_ys_are_spread_over_messages_and_connections_and_all_watched() -> None:
    async def scenario(
        mint: FakeWsMint,
        m: WatchManager,
        rec: Recorder,
        obs: CountingObserver,
        snap: StatesSnapshot,
    ) -> None:
        ys = random_ys(2500)
        spent = ys[:5]
        for y in spent:
            mint.states[y] = MintState.SPENT
        m.watch(ys)
        await _settle(m)
        assert m.watched == 2500
        assert m.connections == 3
        subscribes = [s for s in mint.sent if s.kind == "subscribe"]
        assert all(s.filters <= 1000 for s in subscribes)
        assert sum(s.filters for s in subscribes) == 2500
        assert len(subscribes) == 3 and mint.refused == 0
        assert mint.subscribed() == set(ys)
        assert snap.ys == 2500  # every subscribed Y confirmed by a snapshot as well
        assert m.live.fresh_states(ys) == {
            y: MintState.SPENT if y in spent else MintState.UNSPENT for y in ys
        }
        assert obs.gauge == {"wanted": 2500, "watched": 2500, "connections": 3}

    _run(scenario)


@pytest.mark.parametrize("model", ["elastic", "none"])
def test_the_watch_never_exceeds_the_message_budget_over_an_hour_of_churn(model: str) -> None:
    """Every connect and message counted the way Nutshell's elastic limiter counts them.

    With the elastic model no message is refused; with the token bucket alone (`none`), the
    same churn runs into the limiter: a steady 10/min never leaves the quiet minute it needs.
    """

    async def scenario(
        mint: FakeWsMint,
        m: WatchManager,
        rec: Recorder,
        obs: CountingObserver,
        snap: StatesSnapshot,
    ) -> None:
        rng = random.Random(3)
        pool = random_ys(4000)
        watched: list[str] = []
        for _ in range(CHURN_STEPS):  # every 5 s the worker adds and drops some Ys
            new = rng.sample(pool, 20)
            m.watch(new, tier=rng.choice(list(Tier)), score=rng.random())
            watched += new
            gone = watched[: rng.randint(0, 15)]
            m.unwatch(gone)
            watched = watched[len(gone) :]
            await asyncio.sleep(5)
        if model == "none":
            assert mint.refused > 0
            return
        assert mint.refused == 0, "the elastic limiter refused one of our messages"
        times = [s.at for s in mint.sent]
        assert len(times) > CHURN_STEPS // 7  # the watch kept working through the churn
        for i, t in enumerate(times):  # the token bucket: 10/min with a burst of 5
            assert sum(1 for u in times[i:] if u < t + 60) <= 10 + 5
        assert obs.counts["sent"] == len(times)

    _run(scenario, limiter_model=model)


def test_a_spend_is_reported_by_notification_without_any_snapshot() -> None:
    async def scenario(
        mint: FakeWsMint,
        m: WatchManager,
        rec: Recorder,
        obs: CountingObserver,
        snap: StatesSnapshot,
    ) -> None:
        loop = asyncio.get_running_loop()
        m.watch([Y1])
        await _settle(m, 5)
        calls = len(snap.calls)
        spent_at = loop.time()
        mint.set_state(Y1, MintState.SPENT)
        learned = await rec.wait_for(Y1, MintState.SPENT, timeout=5)
        assert learned.via is Via.NOTIFICATION
        assert learned.mono - spent_at < 0.1
        assert len(snap.calls) == calls
        assert m.live.fresh_state(Y1) is MintState.SPENT

    _run(scenario)


def test_keepalive_holds_a_socket_open_past_the_mints_idle_timeout() -> None:
    async def scenario(
        mint: FakeWsMint,
        m: WatchManager,
        rec: Recorder,
        obs: CountingObserver,
        snap: StatesSnapshot,
    ) -> None:
        m.watch([Y1])
        await asyncio.sleep(3000)  # ten idle timeouts
        assert mint.connects == 1
        assert obs.counts["reconnect:lost"] == 0
        assert 3000 / 110 <= obs.counts["sent:keepalive"] <= 3000 / 100 + 1
        assert mint.refused == 0
        assert mint.subscribed() == {Y1}  # the keep-alive left no subscription of its own
        assert m.live.fresh_state(Y1) is MintState.UNSPENT

    _run(
        scenario,
        mint=FakeWsMint(idle_timeout_s=300),
        keepalive_s=100,
        mint_idle_timeout_s=300,
        fresh_max_age_s=10_000,
    )


def test_without_keepalive_the_mint_closes_idle_sockets_and_the_watch_reconnects() -> None:
    async def scenario(
        mint: FakeWsMint,
        m: WatchManager,
        rec: Recorder,
        obs: CountingObserver,
        snap: StatesSnapshot,
    ) -> None:
        m.watch([Y1])
        await asyncio.sleep(1000)
        assert mint.connects >= 3  # closed after 300 s idle each time, and replaced
        assert obs.counts["reconnect:lost"] >= 2
        assert m.watched == 1

    _run(
        scenario,
        mint=FakeWsMint(idle_timeout_s=300),
        keepalive_s=400,
        mint_idle_timeout_s=1000,
    )


def test_reconnects_back_off_exponentially_with_jitter_then_resnapshot() -> None:
    async def scenario(
        mint: FakeWsMint,
        m: WatchManager,
        rec: Recorder,
        obs: CountingObserver,
        snap: StatesSnapshot,
    ) -> None:
        m.watch([Y1])
        await _settle(m, 5)
        mint.down = True
        mint.kill()
        await asyncio.sleep(0.1)
        assert not m.live.fresh(Y1)  # no connection: nothing is known now
        await asyncio.sleep(200)
        attempts = mint.connect_times[1:]
        gaps = [b - a for a, b in itertools.pairwise(attempts)]
        # The lost connection was young (up < STABLE_S), so its loss was the first failure:
        # the attempts' ceilings are 2, 4, 8, ... 120 s, and each gap lies between half its
        # ceiling and the ceiling (plus the planner's gather and the budget's pacing).
        for i, gap in enumerate(gaps[:6]):
            ceiling = min(120.0, 2.0 ** (i + 1))
            assert ceiling / 2 <= gap <= ceiling + 7, (i, gaps)
        snapshots = len(snap.calls)
        mint.states[Y1] = MintState.SPENT  # changed while we were away; no notification
        mint.cdk = True
        mint.drop_notes = True
        mint.down = False
        await rec.wait_for(Y1, MintState.SPENT, timeout=200)
        assert rec.of(Y1)[-1].via is Via.SNAPSHOT
        assert len(snap.calls) > snapshots
        assert obs.counts["reconnect:lost"] == 1
        assert m.live.fresh_state(Y1) is MintState.SPENT

    _run(scenario)


def test_cdk_sends_no_initial_state_for_unspent_so_the_snapshot_confirms_it() -> None:
    async def scenario(
        mint: FakeWsMint,
        m: WatchManager,
        rec: Recorder,
        obs: CountingObserver,
        snap: StatesSnapshot,
    ) -> None:
        pending = random_ys(1)[0]
        mint.states[pending] = MintState.PENDING
        m.watch([Y1, pending])
        await _settle(m, 5)
        assert [s.via for s in rec.of(Y1)] == [Via.SNAPSHOT]
        assert {s.via for s in rec.of(pending)} == {Via.NOTIFICATION, Via.SNAPSHOT}
        assert m.live.fresh_states([Y1, pending]) == {
            Y1: MintState.UNSPENT,
            pending: MintState.PENDING,
        }

    _run(scenario, mint=FakeWsMint(cdk=True))


def test_dropped_notifications_are_caught_by_the_periodic_snapshot() -> None:
    async def scenario(
        mint: FakeWsMint,
        m: WatchManager,
        rec: Recorder,
        obs: CountingObserver,
        snap: StatesSnapshot,
    ) -> None:
        m.watch([Y1])
        await _settle(m, 5)
        mint.drop_notes = True
        mint.set_state(Y1, MintState.SPENT)
        learned = await rec.wait_for(Y1, MintState.SPENT, timeout=200)
        assert learned.via is Via.SNAPSHOT

    _run(scenario, snapshot_interval_s=60.0)


def test_a_failed_snapshot_is_retried_and_unknown_meanwhile() -> None:
    async def scenario(
        mint: FakeWsMint,
        m: WatchManager,
        rec: Recorder,
        obs: CountingObserver,
        snap: StatesSnapshot,
    ) -> None:
        mint.cdk = True  # no initial state: only the snapshot can confirm it
        snap.fail = RuntimeError("rate limited")
        m.watch([Y1])
        await _settle(m, 5)
        assert not m.live.fresh(Y1)
        assert obs.counts["snapshot:RuntimeError"] >= 1
        snap.fail = None
        await _settle(m, 15)
        assert m.live.fresh_state(Y1) is MintState.UNSPENT

    _run(scenario)


def test_a_resubscribed_y_is_unknown_until_confirmed_under_its_new_subscription() -> None:
    async def scenario(
        mint: FakeWsMint,
        m: WatchManager,
        rec: Recorder,
        obs: CountingObserver,
        snap: StatesSnapshot,
    ) -> None:
        ys = random_ys(4)
        m.watch(ys)
        await _settle(m, 5)
        assert m.live.fresh_state(ys[0]) is MintState.UNSPENT
        snap.fail = RuntimeError("no snapshots now")
        m.unwatch(ys[1:])  # 3 of 4 gone: the subscription is rebuilt around ys[0]
        await _settle(m, 10)
        assert obs.counts["sent:unsubscribe"] == 1
        assert obs.counts["sent:subscribe"] == 2
        assert m.is_watched(ys[0])
        assert not m.live.fresh(ys[0])  # CDK said nothing, the snapshot failed: unknown
        snap.fail = None
        await _settle(m, 15)
        assert m.live.fresh_state(ys[0]) is MintState.UNSPENT

    _run(scenario, mint=FakeWsMint(cdk=True))


def test_a_mint_dropping_every_connection_young_gets_exponentially_fewer_attempts() -> None:
    async def scenario(
        mint: FakeWsMint,
        m: WatchManager,
        rec: Recorder,
        obs: CountingObserver,
        snap: StatesSnapshot,
    ) -> None:
        m.watch([Y1])
        await asyncio.sleep(600)
        # Every connection dies 2 s after its last message. Reconnecting each time after a
        # second's jitter would mean ~100 connects; the backoff doubles up to 120 s instead.
        assert 6 <= mint.connects <= 16

    _run(
        scenario,
        mint=FakeWsMint(idle_timeout_s=2),
        keepalive_s=400,
        mint_idle_timeout_s=1000,
    )


def test_unwatch_forgets_the_state_and_unsubscribes() -> None:
    async def scenario(
        mint: FakeWsMint,
        m: WatchManager,
        rec: Recorder,
        obs: CountingObserver,
        snap: StatesSnapshot,
    ) -> None:
        keep, gone = random_ys(2)
        m.watch([keep])
        await _settle(m, 5)
        m.watch([gone])
        await _settle(m, 5)
        assert mint.subscribed() == {keep, gone}
        m.unwatch([gone.upper()])
        assert gone not in m.live
        seen = len(rec.seen)
        mint.set_state(gone, MintState.SPENT)
        await _settle(m, 5)
        assert len(rec.seen) == seen  # not watched: not reported
        assert mint.subscribed() == {keep}
        assert obs.counts["sent:unsubscribe"] == 1

    _run(scenario)


def test_pending_proofs_are_watched_first_when_the_budget_is_short() -> None:
    async def scenario(
        mint: FakeWsMint,
        m: WatchManager,
        rec: Recorder,
        obs: CountingObserver,
        snap: StatesSnapshot,
    ) -> None:
        unspent, melt, pending = random_ys(4), random_ys(1), random_ys(1)
        m.watch(unspent, tier=Tier.UNSPENT, score=1.0)
        await _settle(m, 5)
        assert mint.subscribed() == set(unspent[:3])
        m.watch(pending, tier=Tier.PENDING)
        m.watch(melt, tier=Tier.MELT)
        await _settle(m, 120)
        assert {y for y in [*unspent, *melt, *pending] if m.is_watched(y)} == {
            *pending,
            *melt,
            unspent[0],
        }
        assert mint.subscribed() >= {*pending, *melt, unspent[0]}

    _run(scenario, max_filters_per_mint=3, max_connections_per_mint=2, filters_per_connection=4)


def test_a_refused_subscribe_marks_the_connection_full_and_moves_on() -> None:
    async def scenario(
        mint: FakeWsMint,
        m: WatchManager,
        rec: Recorder,
        obs: CountingObserver,
        snap: StatesSnapshot,
    ) -> None:
        mint.fail_next_subscribes = 1
        m.watch([Y1])
        await _settle(m, 30)
        assert m.watched == 1
        assert obs.counts["rejected:subscribe refused"] == 1
        assert obs.counts["reconnect:recycle"] + mint.connects >= 2

    _run(scenario, max_connections_per_mint=1, max_filters_per_mint=999)


def test_initial_states_sent_before_the_acknowledgement_still_count() -> None:
    async def scenario(
        mint: FakeWsMint,
        m: WatchManager,
        rec: Recorder,
        obs: CountingObserver,
        snap: StatesSnapshot,
    ) -> None:
        mint.notes_before_response = True
        snap.fail = RuntimeError("no snapshots today")
        m.watch([Y1])
        await _settle(m, 5)
        assert [s.via for s in rec.of(Y1)] == [Via.NOTIFICATION]
        assert m.live.fresh_state(Y1) is MintState.UNSPENT

    _run(scenario)


def test_a_broken_on_state_callback_does_not_stop_the_watch() -> None:
    async def main() -> None:
        mint = FakeWsMint()
        loop = asyncio.get_running_loop()

        def explode(*args: Any) -> None:
            raise RuntimeError("callback bug")

        manager = WatchManager(
            MINT,
            snapshot=StatesSnapshot(mint.states),
            on_state=explode,
            connect=mint.connect,
            clock=loop.time,
            config=WatchConfig(snapshot_interval_s=3600),
        )
        await manager.start(NUTSHELL_INFO)
        manager.watch([Y1])
        await asyncio.sleep(5)
        mint.set_state(Y1, MintState.SPENT)
        await asyncio.sleep(1)
        assert manager.live.fresh_state(Y1) is MintState.SPENT
        await manager.close()

    run_virtual(main())


def test_a_mint_without_nut17_proof_state_is_not_watched() -> None:
    async def main() -> None:
        mint = FakeWsMint()
        manager = WatchManager(
            MINT, snapshot=StatesSnapshot({}), on_state=Recorder(), connect=mint.connect
        )
        assert not await manager.start({"nuts": {"7": {"supported": True}}})
        assert manager.supported is False
        manager.watch([Y1])
        await asyncio.sleep(10)
        assert mint.connects == 0
        assert not manager.live.fresh(Y1)
        await manager.close()

    run_virtual(main())
