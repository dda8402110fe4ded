"""The gateway's pure parts: pacing, circuit breaker, caches, NUT-07 answer validation."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streams.domain import MintState, Source
from streams.mint.breaker import BreakerState, CircuitBreaker
from streams.mint.cache import LruMap, SeenState, SpentCache
from streams.mint.pacing import Pacer, TokenBucket
from streams.mint.protocol import (
    BadAnswer,
    RateLimited,
    ServerError,
    States,
    TooLong,
    advertised_limit,
    checkstate_body,
    interpret_checkstate,
    normalise_mint_url,
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
        (400, b"<html>Bad Request</html>", 20, TooLong),
        (422, b"not json", 20, TooLong),
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
