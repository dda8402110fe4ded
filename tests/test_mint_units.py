"""The gateway's pure parts: pacing, circuit breaker, caches, NUT-07 answer validation."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streams.core.domain import MintState, Source
from streams.core.mint_url import normalise_or_strip as normalise_mint_url
from streams.core.settings import LimiterModel
from streams.mint.breaker import BreakerState, CircuitBreaker
from streams.mint.cache import LruMap, SeenState, SpentCache
from streams.mint.limiter import CLOCK_SLACK_S, LimiterSpec, TokenBucket
from streams.mint.pacing import Pacer
from streams.mint.protocol import (
    BadAnswer,
    RateLimited,
    ServerError,
    States,
    TooLong,
    advertised_limit,
    checkstate_body,
    interpret_checkstate,
)
from tests.support.clock import FakeClock

Y1 = "02" + "11" * 32
Y2 = "03" + "22" * 32
Y3 = "02" + "33" * 32


# --- token bucket and pacer ------------------------------------------------------------------


def test_bucket_starts_full_then_refills_at_its_rate() -> None:
    clock = FakeClock()
    bucket = TokenBucket(rate_per_s=2.0, capacity=3, clock=clock)
    assert [bucket.try_take() for _ in range(4)] == [True, True, True, False]
    assert bucket.wait_time() == pytest.approx(0.5)
    clock.advance(0.49)
    assert not bucket.try_take()
    clock.advance(0.02)
    assert bucket.try_take()
    clock.advance(100)
    assert bucket.available == 3  # never above capacity


def test_bucket_wait_time_is_infinite_when_capacity_can_never_suffice() -> None:
    bucket = TokenBucket(rate_per_s=1.0, capacity=2, clock=FakeClock())
    assert bucket.wait_time(1, keep=2) == math.inf


def _pacer(clock: FakeClock, *, rpm: float = 40, burst: int = 5, share: float = 0.25) -> Pacer:
    return Pacer(requests_per_minute=rpm, burst=burst, silence_s=60, sweep_share=share, clock=clock)


def test_pacer_allows_burst_then_paces_at_requests_per_minute() -> None:
    clock = FakeClock()
    pacer = _pacer(clock, rpm=40, burst=5)
    assert sum(pacer.try_acquire() for _ in range(10)) == 5
    assert pacer.wait_time() == pytest.approx(1.5)  # 60 s / 40
    clock.advance(1.5)
    assert pacer.try_acquire()
    assert not pacer.try_acquire()


def test_silence_after_429_lasts_the_window_and_restarts_on_each_429() -> None:
    clock = FakeClock()
    pacer = _pacer(clock)
    pacer.note_rate_limited()
    clock.advance(59.9)
    assert not pacer.try_acquire()
    assert pacer.silence_remaining() == pytest.approx(0.1)
    pacer.note_rate_limited()  # a second 429 restarts the whole window
    clock.advance(59.9)
    assert not pacer.try_acquire()
    assert pacer.wait_time() == pytest.approx(0.1)
    assert pacer.sweep_allowance() == 0
    clock.advance(0.2)
    assert pacer.try_acquire()


def test_sweep_leaves_the_preflight_reserve_untouched() -> None:
    clock = FakeClock()
    pacer = _pacer(clock, rpm=40, burst=5, share=0.25)
    assert pacer.preflight_reserve == 4
    assert pacer.sweep_allowance() == 1
    assert pacer.try_acquire(Source.SWEEP)
    assert not pacer.try_acquire(Source.SWEEP)  # would dip into the reserve
    assert pacer.sweep_allowance() == 0
    # Preflight still has its whole reserve at once.
    assert sum(pacer.try_acquire(Source.PREFLIGHT) for _ in range(4)) == 4


def test_sweep_gets_nothing_while_preflight_uses_the_budget() -> None:
    clock = FakeClock()
    pacer = _pacer(clock, rpm=60, burst=5, share=0.25)
    granted_sweep = 0
    for _ in range(600):  # ten minutes; preflight takes every token as soon as it appears
        clock.advance(0.1)
        while pacer.try_acquire(Source.PREFLIGHT):
            pass
        granted_sweep += pacer.try_acquire(Source.SWEEP)
    assert granted_sweep == 0


@settings(max_examples=200, deadline=None)
@given(
    steps=st.lists(
        st.tuples(
            st.floats(min_value=0, max_value=5, allow_nan=False),
            st.sampled_from([Source.PREFLIGHT, Source.SWEEP]),
        ),
        max_size=200,
    ),
    burst=st.integers(min_value=1, max_value=10),
    share=st.sampled_from([0.1, 0.25, 0.5, 0.9]),
)
def test_pacing_never_exceeds_the_budget_and_sweep_never_starves_preflight(
    steps: list[tuple[float, Source]], burst: int, share: float
) -> None:
    clock = FakeClock()
    rpm = 40.0
    pacer = _pacer(clock, rpm=rpm, burst=burst, share=share)
    start = clock()
    granted = {Source.PREFLIGHT: 0, Source.SWEEP: 0}
    for dt, source in steps:
        clock.advance(dt)
        allowance = pacer.sweep_allowance()
        ok = pacer.try_acquire(source)
        if source is Source.SWEEP:
            assert ok == (allowance > 0)
            if ok and burst > 1:
                # What the sweep leaves is enough for a preflight right now.
                assert pacer.main.available >= 1 - 1e-9
        granted[source] += ok
        elapsed = clock() - start
        assert sum(granted.values()) <= burst + rpm / 60 * elapsed + 1e-6
        assert granted[Source.SWEEP] <= max(1, burst * share) + share * rpm / 60 * elapsed + 1e-6


# --- the mint's limiter: elastic (Nutshell) and fixed windows --------------------------------


def _limited(
    clock: FakeClock,
    *,
    model: LimiterModel = "elastic",
    limit: int = 10,
    margin: float = 0.0,
    rpm: float = 6000,
    burst: int = 100,
    share: float = 0.25,
    slack: float = 1.0,
    widen_after: float = 0.5,
) -> Pacer:
    spec = LimiterSpec(model=model, limit=limit, window_s=60, margin=margin, slack_s=slack)
    return Pacer(
        requests_per_minute=rpm,
        burst=burst,
        silence_s=60,
        sweep_share=share,
        limiter=spec,
        widen_after=widen_after,
        clock=clock,
    )


def _send(pacer: Pacer, *, answered: bool = True) -> None:
    """One request that ends at once (the fake clock does not move during it)."""
    with pacer.on_the_wire() as wire:
        wire.answered = answered


def elastic_counts(hits: list[float], window_s: float = 60.0) -> list[int]:
    """What Nutshell's limiter (limits' fixed-window-elastic-expiry, MemoryStorage.incr) counts
    at each hit: the count resets only when a hit comes `window_s` or more after the previous."""
    counts: list[int] = []
    count, expires = 0, -math.inf
    for at in sorted(hits):
        if expires <= at:
            count = 0
        count += 1
        expires = at + window_s
        counts.append(count)
    return counts


def test_limiter_budget_is_the_limit_less_the_margin() -> None:
    assert LimiterSpec(limit=60, margin=0.2).budget == 48
    assert LimiterSpec(limit=10, margin=0.2).budget == 8
    assert LimiterSpec(limit=10, margin=0.0).budget == 10
    assert LimiterSpec(limit=1, margin=0.5).budget == 1  # always at least one


def test_elastic_reference_matches_what_nutshell_did() -> None:
    # Measured against Nutshell 0.20.2 at 10/minute: one request every 7 s (8.6/min) is refused
    # at the 11th; a 55 s pause keeps the count, a 61 s pause resets it.
    assert elastic_counts([7.0 * i for i in range(11)])[-1] == 11
    assert elastic_counts([*range(9), 8 + 55, 8 + 55.01])[-2:] == [10, 11]
    assert elastic_counts([*range(10), 9 + 61])[-1] == 1


def test_elastic_spends_the_session_budget_then_stays_quiet_a_full_window() -> None:
    clock = FakeClock()
    pacer = _limited(clock, limit=10, margin=0.2)  # budget 8
    start = clock()
    sent: list[float] = []
    for _ in range(30):  # a steady 10/min, never above the limit's rate: Nutshell refuses the 11th
        if pacer.try_acquire():
            _send(pacer)
            sent.append(clock() - start)
        clock.advance(6)
    # 8 in a session, then nothing until a full window after the 8th (at 42 s), then 8 more.
    assert sent == [6.0 * i for i in range(8)] + [108.0 + 6 * i for i in range(8)]
    assert max(elastic_counts(sent)) == 8


def test_elastic_quiet_is_measured_from_the_last_request_and_then_resumes() -> None:
    clock = FakeClock()
    pacer = _limited(clock, limit=4, margin=0.0)
    for _ in range(4):
        assert pacer.try_acquire()
        _send(pacer)
        clock.advance(10)
    assert not pacer.try_acquire()
    # The 4th request went 10 s ago: 50 s (and the clock slack) of quiet remain.
    assert pacer.wait_time() == pytest.approx(50 + CLOCK_SLACK_S)
    assert pacer.quiet_remaining() == pytest.approx(50 + CLOCK_SLACK_S)
    clock.advance(50)
    assert not pacer.try_acquire()
    clock.advance(CLOCK_SLACK_S + 0.01)
    assert sum(pacer.try_acquire() for _ in range(10)) == 4  # a whole new session


def test_a_pause_shorter_than_the_window_keeps_the_count() -> None:
    clock = FakeClock()
    pacer = _limited(clock, limit=10, margin=0.0)
    for _ in range(9):
        assert pacer.try_acquire()
    clock.advance(55)
    assert pacer.try_acquire()  # the 10th
    assert not pacer.try_acquire()  # the 11th would be refused by the mint: not sent
    clock.advance(60 + CLOCK_SLACK_S)
    assert pacer.try_acquire()


def test_elastic_quiet_starts_when_the_last_request_ends() -> None:
    clock = FakeClock()
    pacer = _limited(clock, limit=2, margin=0.0, slack=1.0)
    assert pacer.try_acquire()
    _send(pacer)
    assert pacer.try_acquire()
    with pacer.on_the_wire() as wire:  # a slow request: 5 s on the wire
        clock.advance(5)
        assert pacer.wait_time() == pytest.approx(60 + CLOCK_SLACK_S)  # nothing ends in flight
        wire.answered = True
    clock.advance(60)
    assert not pacer.try_acquire()
    clock.advance(CLOCK_SLACK_S)
    assert pacer.try_acquire()


def test_a_request_we_gave_up_on_counts_as_ending_slack_later() -> None:
    clock = FakeClock()
    pacer = _limited(clock, limit=1, margin=0.0, slack=1.0)
    assert pacer.try_acquire()
    _send(pacer, answered=False)  # a timeout: the mint may count it after we stopped waiting
    clock.advance(60 + CLOCK_SLACK_S)
    assert not pacer.try_acquire()
    clock.advance(1.0)
    assert pacer.try_acquire()


def test_elastic_429_silences_restarts_and_ends_the_session() -> None:
    clock = FakeClock()
    pacer = _limited(clock, limit=10, margin=0.0)
    assert pacer.try_acquire()
    _send(pacer)
    pacer.note_rate_limited()  # e.g. another client behind our IP spent the mint's count
    assert pacer.silence_remaining() == pytest.approx(60)
    assert pacer.window.available() == 0
    clock.advance(30)
    assert pacer.wait_time() == pytest.approx(30 + CLOCK_SLACK_S)
    pacer.note_rate_limited()  # a second 429 restarts the silence
    clock.advance(59.9)
    assert not pacer.try_acquire()
    assert pacer.sweep_allowance() == 0
    clock.advance(0.2)
    assert pacer.try_acquire()
    assert pacer.window.available() == 9  # a fresh session


def test_sweep_uses_only_the_first_share_of_a_session() -> None:
    clock = FakeClock()
    pacer = _limited(clock, limit=10, margin=0.2, share=0.25)  # budget 8, preflights keep 6
    assert pacer.window_reserve == 6
    assert pacer.sweep_allowance() == 2
    granted_sweep = 0
    for _ in range(40):
        clock.advance(1)
        if pacer.try_acquire(Source.SWEEP):
            _send(pacer)
            granted_sweep += 1
    assert granted_sweep == 2
    assert pacer.sweep_allowance() == 0
    assert pacer.wait_time(Source.SWEEP) > 0
    assert sum(pacer.try_acquire() for _ in range(10)) == 6  # preflights' part is intact
    assert not pacer.try_acquire_spare()


def test_widening_starts_once_the_share_of_the_budget_is_used() -> None:
    clock = FakeClock()
    pacer = _limited(clock, limit=10, margin=0.2, widen_after=0.5)  # budget 8
    flags = []
    for _ in range(8):
        flags.append(pacer.widening())
        assert pacer.try_acquire()
    assert flags == [False] * 4 + [True] * 4
    clock.advance(61)
    assert not pacer.widening()
    assert not _pacer(clock).widening()  # no limiter model: never


def test_fixed_model_caps_requests_per_window_and_forgets_old_ones() -> None:
    clock = FakeClock()
    pacer = _limited(clock, model="fixed", limit=5, margin=0.0, slack=1.0)
    for _ in range(5):
        assert pacer.try_acquire()
        clock.advance(10)
    assert not pacer.try_acquire()  # 5 in the last 50 s
    assert pacer.wait_time() == pytest.approx(11 + CLOCK_SLACK_S)  # the first leaves the window
    clock.advance(11 + CLOCK_SLACK_S)
    assert pacer.try_acquire()
    assert not pacer.try_acquire()


def test_none_model_leaves_pacing_to_the_token_bucket() -> None:
    clock = FakeClock()
    pacer = _limited(clock, model="none", rpm=60, burst=3)
    assert sum(pacer.try_acquire() for _ in range(5)) == 3
    pacer.note_rate_limited()
    clock.advance(60)
    assert pacer.try_acquire()


# Gaps near a window's length are where an off-by-a-little quiet would show.
_gaps = st.one_of(
    st.floats(min_value=0, max_value=20, allow_nan=False),
    st.sampled_from([0.0, 0.5, 59.0, 62.0]),
    st.sampled_from([59.995, 60.0, 60.03, 60.06, 61.0, 61.03, 61.06]),
)
_arrivals = st.lists(
    st.tuples(
        _gaps,  # time since the previous caller
        st.sampled_from([Source.PREFLIGHT, Source.PREFLIGHT, Source.SWEEP, None]),  # None: info
        st.one_of(st.just(0.0), st.floats(min_value=0, max_value=3, allow_nan=False)),  # on wire
        st.booleans(),  # answered (else a timeout)
        st.one_of(st.sampled_from([0.0, 1.0]), st.floats(min_value=0, max_value=1)),  # counted at
    ),
    max_size=250,
)


@settings(max_examples=500, deadline=None)
@given(
    arrivals=_arrivals,
    limit=st.one_of(st.integers(min_value=1, max_value=5), st.integers(min_value=1, max_value=60)),
    margin=st.sampled_from([0.0, 0.1, 0.2]),
    rpm=st.sampled_from([10.0, 40.0, 120.0, 6000.0]),
    burst=st.integers(min_value=1, max_value=20),
    share=st.sampled_from([0.1, 0.25, 0.5]),
)
def test_elastic_model_never_lets_a_nutshell_limiter_refuse_us(
    arrivals: list[tuple[float, Source | None, float, bool, float]],
    limit: int,
    margin: float,
    rpm: float,
    burst: int,
    share: float,
) -> None:
    """Whatever the arrivals, latencies and timeouts, the hits an elastic-expiry limiter sees
    never count past the budget; and the sweep never takes the preflights' part of a session."""
    clock = FakeClock()
    slack = 1.0
    pacer = _limited(
        clock, limit=limit, margin=margin, rpm=rpm, burst=burst, share=share, slack=slack
    )
    budget = LimiterSpec(limit=limit, margin=margin).budget
    wires: list[tuple[float, Any, Any]] = []  # (ends at, context manager, wire)
    hits: list[tuple[float, bool]] = []  # (when the mint counted it, was it a sweep)

    def finish_until(t: float) -> None:
        for end, manager, wire in sorted(wires, key=lambda w: w[0]):
            if end <= t:
                clock.now = max(clock.now, end)
                manager.__exit__(None, None, None)
                wires.remove((end, manager, wire))
        clock.now = max(clock.now, t)

    for gap, source, on_wire, answered, counted_at in arrivals:
        finish_until(clock.now + gap)
        granted = pacer.try_acquire_spare() if source is None else pacer.try_acquire(source)
        if not granted:
            continue
        manager = pacer.on_the_wire()
        wire = manager.__enter__()
        wire.answered = answered
        # An answered request was counted while on the wire; one we gave up on may be counted
        # up to `slack` after we stopped waiting.
        late = on_wire + (0.0 if answered else slack)
        hits.append((clock.now + counted_at * late, source is Source.SWEEP))
        wires.append((clock.now + on_wire, manager, wire))
    finish_until(clock.now + 1000)

    ordered = sorted(hits)
    counts = elastic_counts([at for at, _ in ordered])
    assert max(counts, default=0) <= budget <= limit
    # Per session (a run of hits without a quiet window), the sweep's part stays its share.
    sweep_in_session = 0
    for (_, is_sweep), count in zip(ordered, counts, strict=True):
        sweep_in_session = (0 if count == 1 else sweep_in_session) + is_sweep
        assert sweep_in_session <= budget - pacer.window_reserve


@settings(max_examples=200, deadline=None)
@given(
    arrivals=_arrivals,
    limit=st.integers(min_value=1, max_value=60),
    burst=st.integers(min_value=1, max_value=20),
)
def test_fixed_model_never_exceeds_the_limit_in_any_window(
    arrivals: list[tuple[float, Source | None, float, bool, float]], limit: int, burst: int
) -> None:
    clock = FakeClock()
    pacer = _limited(clock, model="fixed", limit=limit, margin=0.0, burst=burst, slack=1.0)
    hits: list[float] = []
    for gap, source, on_wire, _, counted_at in arrivals:
        clock.advance(gap)
        granted = pacer.try_acquire_spare() if source is None else pacer.try_acquire(source)
        if granted:
            hits.append(clock.now + counted_at * min(on_wire, 1.0))  # counted within the slack
    hits.sort()
    for i, start in enumerate(hits):
        in_window = sum(1 for at in hits[i:] if at < start + 60)
        assert in_window <= limit


# --- circuit breaker -------------------------------------------------------------------------


def test_breaker_opens_after_consecutive_failures_and_a_success_resets_the_count() -> None:
    clock = FakeClock()
    breaker = CircuitBreaker(failure_threshold=3, cooldown_s=30, clock=clock)
    breaker.record_failure()
    breaker.record_failure()
    breaker.record_success()
    breaker.record_failure()
    breaker.record_failure()
    assert breaker.state is BreakerState.CLOSED
    breaker.record_failure()
    assert breaker.state is BreakerState.OPEN
    assert not breaker.admits()
    assert not breaker.acquire()
    assert breaker.retry_after() == pytest.approx(30)


def test_half_open_lets_exactly_one_probe_through() -> None:
    clock = FakeClock()
    breaker = CircuitBreaker(failure_threshold=1, cooldown_s=30, clock=clock)
    breaker.record_failure()
    clock.advance(30)
    assert breaker.state is BreakerState.HALF_OPEN
    assert breaker.admits()
    assert breaker.acquire()
    assert not breaker.admits()
    assert not breaker.acquire()
    breaker.record_failure()  # the probe failed: another full cool-down
    assert breaker.state is BreakerState.OPEN
    clock.advance(29)
    assert breaker.state is BreakerState.OPEN
    clock.advance(1)
    assert breaker.acquire()
    breaker.record_success()
    assert breaker.state is BreakerState.CLOSED
    assert breaker.consecutive_failures == 0


def test_a_probe_without_verdict_frees_the_slot() -> None:
    clock = FakeClock()
    breaker = CircuitBreaker(failure_threshold=1, cooldown_s=5, clock=clock)
    breaker.record_failure()
    clock.advance(5)
    assert breaker.acquire()
    breaker.release()  # e.g. the probe met a 429
    assert breaker.state is BreakerState.HALF_OPEN
    assert breaker.acquire()


# --- caches ----------------------------------------------------------------------------------


def test_lru_map_forgets_the_least_recently_used() -> None:
    lru: LruMap[str, int] = LruMap(2)
    lru.put("a", 1)
    lru.put("b", 2)
    assert lru.get("a") == 1  # a is now the most recent
    lru.put("c", 3)
    assert "b" not in lru
    assert lru.get("a") == 1
    assert lru.get("c") == 3
    assert len(lru) == 2


def test_spent_cache_partitions_in_order_and_zero_size_keeps_nothing() -> None:
    cache = SpentCache(10)
    cache.add(Y2)
    assert cache.partition([Y1, Y2, Y3]) == ([Y2], [Y1, Y3])
    empty = SpentCache(0)
    empty.add(Y1)
    assert Y1 not in empty
    assert empty.partition([Y1]) == ([], [Y1])


@given(st.lists(st.integers(min_value=0, max_value=50), max_size=300))
def test_spent_cache_is_bounded_and_keeps_the_most_recent(keys: list[int]) -> None:
    cache = SpentCache(8)
    for k in keys:
        cache.add(str(k))
    assert len(cache) <= 8
    for k in list(dict.fromkeys(reversed(keys)))[:8]:
        assert str(k) in cache


def test_seen_state_is_a_tuple_of_state_and_time() -> None:
    at = datetime(2025, 1, 1, tzinfo=UTC)
    state, seen_at = SeenState(MintState.PENDING, at)
    assert (state, seen_at) == (MintState.PENDING, at)


# --- NUT-07 answers --------------------------------------------------------------------------


def _body(states: list[dict[str, object]]) -> bytes:
    return json.dumps({"states": states}).encode()


def _entry(y: str, state: str = "UNSPENT") -> dict[str, object]:
    return {"Y": y, "state": state, "witness": None}


def test_request_body_is_nut07() -> None:
    assert json.loads(checkstate_body([Y1, Y2])) == {"Ys": [Y1, Y2]}


def test_a_valid_answer_maps_every_requested_y() -> None:
    body = _body([_entry(Y2, "SPENT"), _entry(Y1, "PENDING"), _entry(Y3)])
    answer = interpret_checkstate(200, body, [Y1, Y2, Y3])
    assert answer == States({Y1: MintState.PENDING, Y2: MintState.SPENT, Y3: MintState.UNSPENT})


def test_witness_may_be_a_string_or_absent() -> None:
    body = _body(
        [
            {"Y": Y1, "state": "SPENT", "witness": '{"signatures": []}'},
            {"Y": Y2, "state": "UNSPENT"},
        ]
    )
    assert isinstance(interpret_checkstate(200, body, [Y1, Y2]), States)


@pytest.mark.parametrize(
    ("states", "why"),
    [
        ([_entry(Y1)], "missing"),
        ([_entry(Y1), _entry(Y2), _entry(Y3)], "extra"),
        ([_entry(Y1), _entry(Y1)], "duplicate"),
        ([_entry(Y1), _entry(Y2, "BURNT")], "unknown state"),
        ([_entry(Y1), _entry(Y2, "spent")], "lowercase state"),
        ([_entry(Y1), {"state": "UNSPENT"}], "no Y"),
        ([_entry(Y1), "UNSPENT"], "not an object"),
        ([_entry(Y1), {"Y": Y2, "state": "UNSPENT", "witness": 5}], "bad witness"),
    ],
)
def test_untrustworthy_answers_are_refused(states: list[object], why: str) -> None:
    body = json.dumps({"states": states}).encode()
    assert isinstance(interpret_checkstate(200, body, [Y1, Y2]), BadAnswer), why


@pytest.mark.parametrize(
    "body", [b"", b"<html>hi</html>", b'{"states": [', b"[]", b'{"states": {}}', b'{"x": 1}']
)
def test_non_answers_are_refused(body: bytes) -> None:
    assert isinstance(interpret_checkstate(200, body, [Y1]), BadAnswer)


@given(
    ys=st.lists(st.sampled_from([f"02{i:064x}" for i in range(40)]), unique=True, min_size=1),
    data=st.data(),
)
def test_exactly_the_requested_set_is_accepted(ys: list[str], data: st.DataObject) -> None:
    states = data.draw(
        st.lists(st.sampled_from(list(MintState)), min_size=len(ys), max_size=len(ys))
    )
    order = data.draw(st.permutations(range(len(ys))))
    entries = [_entry(ys[i], states[i].value) for i in order]
    answer = interpret_checkstate(200, _body(entries), ys)
    assert answer == States(dict(zip(ys, states, strict=True)))
    dropped = data.draw(st.integers(min_value=0, max_value=len(ys) - 1))
    assert isinstance(interpret_checkstate(200, _body(entries[:dropped]), ys), BadAnswer)
    assert isinstance(interpret_checkstate(200, _body([*entries, entries[dropped]]), ys), BadAnswer)


@pytest.mark.parametrize(
    ("status", "body", "n", "expected"),
    [
        (429, b'{"detail": "Rate limit exceeded."}', 5, RateLimited),
        (500, b"{}", 5, ServerError),
        (502, b"<html>bad gateway</html>", 5, ServerError),
        (503, b"", 1, ServerError),
        (408, b"", 1, ServerError),
        (
            422,
            b'{"detail": [{"type": "too_long", "loc": ["body", "Ys"], "msg": "at most 1000"}]}',
            1001,
            TooLong,
        ),
        (400, b'{"detail": "too many inputs", "code": 11014}', 20, TooLong),
        (422, b'{"detail": "nope", "code": 11014}', 2, TooLong),
        (413, b"<html>413</html>", 20, TooLong),
        # Finding 13: only the documented signals mean "too long"; a proxy's error page or
        # CDK's plain-text 422 (a malformed Y) must not shrink every later request.
        (400, b"<html>Bad Request</html>", 20, BadAnswer),
        (422, b"not json", 20, BadAnswer),
        (422, b"Failed to deserialize the JSON body", 20, BadAnswer),
        (400, b"<html>Bad Request</html>", 1, BadAnswer),
        (404, b"<html>Not Found</html>", 20, BadAnswer),
        (403, b"forbidden", 20, BadAnswer),
        (400, b'{"detail": "proof already spent", "code": 11001}', 20, BadAnswer),
        (
            422,
            b'{"detail": [{"type": "string_too_long", "loc": ["body", "Ys", 0], "msg": "x"}]}',
            20,
            BadAnswer,
        ),
        (302, b"", 3, BadAnswer),
    ],
)
def test_error_statuses_are_classified(status: int, body: bytes, n: int, expected: type) -> None:
    ys = [f"02{i:064x}" for i in range(n)]
    assert isinstance(interpret_checkstate(status, body, ys), expected)


def test_advertised_limit_reads_nutshell_and_tolerates_absence() -> None:
    nutshell = {
        "nuts": {"7": {"supported": True}, "29": {"supported": True, "max_batch_size": 1000}}
    }
    assert advertised_limit(nutshell) == 1000
    assert advertised_limit({"nuts": {"7": {"supported": True, "max_request_length": 250}}}) == 250
    assert advertised_limit({"nuts": {"7": {"supported": True}}}) is None
    assert advertised_limit({"name": "no nuts"}) is None
    assert advertised_limit({"nuts": {"29": {"max_batch_size": "many"}}}) is None
    assert advertised_limit({"nuts": {"29": {"max_batch_size": 0}}}) is None
    assert advertised_limit({"nuts": {"29": {"max_batch_size": True}}}) is None
    assert advertised_limit(["not", "a", "dict"]) is None


@pytest.mark.parametrize(
    ("raw", "normal"),
    [
        ("http://127.0.0.1:3338", "http://127.0.0.1:3338"),
        ("  HTTP://Mint.Example.COM/  ", "http://mint.example.com"),
        ("https://mint.example.com/Cashu/api/", "https://mint.example.com/Cashu/api"),
        ("https://mint.example.com///", "https://mint.example.com"),
    ],
)
def test_mint_urls_are_normalised(raw: str, normal: str) -> None:
    assert normalise_mint_url(raw) == normal
