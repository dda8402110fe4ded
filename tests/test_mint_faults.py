"""The gateway against a mint that misbehaves on cue: each fault gives the documented error, in
time, and nothing from a bad answer is cached."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from devkit.mints import free_port
from streams.core.cashu import y_from_secret
from streams.core.domain import MintState, Source
from streams.core.errors import (
    CanaryMismatch,
    MintCircuitOpen,
    MintDeadlineExceeded,
    MintProtocolError,
    MintRateLimited,
    MintTransportError,
)
from streams.core.settings import MintSettings
from streams.mint import MintGateway, MintHealth
from tests.support.clock import FakeClock
from tests.support.fault_mint import Fault, FaultMint, TooLongStyle

GatewayFactory = Callable[..., MintGateway]


def new_ys(n: int) -> list[str]:
    tag = uuid.uuid4().hex
    return [y_from_secret(f"{tag}-{i}") for i in range(n)]


@pytest.fixture
async def make_gateway(
    fault_mint: FaultMint, mint_settings: Callable[..., MintSettings]
) -> AsyncIterator[GatewayFactory]:
    made: list[MintGateway] = []

    def build(*, url: str | None = None, clock: Any = None, **fields: Any) -> MintGateway:
        # Generous pacing and no held batches unless a test is about them; fast retries.
        base: dict[str, Any] = {
            "requests_per_minute": 6000,
            "burst": 50,
            "gather_window_ms": 1,
            "limiter_max_gather_ms": 0,
            "max_retries": 2,
            "retry_backoff_s": 0.01,
            "request_timeout_s": 5,
            "breaker_failures": 5,
            "breaker_cooldown_s": 30,
        }
        base.update(fields)
        target = url or fault_mint.url
        gateway = MintGateway(target, mint_settings(target, **base), clock=clock)
        made.append(gateway)
        return gateway

    yield build
    for gateway in made:
        await gateway.close()


def record_health(gateway: MintGateway) -> list[tuple[MintHealth, MintHealth]]:
    changes: list[tuple[MintHealth, MintHealth]] = []
    gateway.add_health_listener(lambda url, old, new: changes.append((old, new)))
    return changes


async def timed(coro: Any) -> tuple[float, BaseException | Any]:
    started = time.monotonic()
    try:
        result: Any = await coro
    except Exception as exc:
        result = exc
    return time.monotonic() - started, result


# --- 429 -------------------------------------------------------------------------------------


async def test_429_silences_the_mint_for_the_whole_window(
    fault_mint: FaultMint, make_gateway: GatewayFactory, fake_clock: FakeClock
) -> None:
    gateway = make_gateway(clock=fake_clock)
    changes = record_health(gateway)
    fault_mint.script(Fault.RATE_LIMIT)
    with pytest.raises(MintRateLimited) as first:
        await gateway.check(new_ys(3))
    assert first.value.retry_after == pytest.approx(60)
    assert gateway.health is MintHealth.RATE_LIMITED
    assert changes == [(MintHealth.OK, MintHealth.RATE_LIMITED)]

    for _ in range(5):  # callers in the silence fail at once and the mint hears nothing
        elapsed, error = await timed(gateway.check(new_ys(2)))
        assert isinstance(error, MintRateLimited)
        assert elapsed < 0.05
    fake_clock.advance(59.5)
    with pytest.raises(MintRateLimited) as late:
        await gateway.check(new_ys(2))
    assert late.value.retry_after == pytest.approx(0.5)
    assert fault_mint.request_count == 1

    fake_clock.advance(0.6)
    fault_mint.script(Fault.RATE_LIMIT)  # the first request after the silence meets another 429
    with pytest.raises(MintRateLimited):
        await gateway.check(new_ys(2))
    assert fault_mint.request_count == 2
    fake_clock.advance(59.5)  # the window restarted with that 429, not with the first one
    with pytest.raises(MintRateLimited):
        await gateway.check(new_ys(2))
    assert fault_mint.request_count == 2

    fake_clock.advance(0.6)
    ys = new_ys(2)
    assert await gateway.check(ys) == dict.fromkeys(ys, MintState.UNSPENT)
    assert fault_mint.request_count == 3
    assert gateway.health is MintHealth.OK
    assert changes[-1] == (MintHealth.RATE_LIMITED, MintHealth.OK)


async def test_callers_waiting_when_a_429_arrives_fail_at_once(
    fault_mint: FaultMint, make_gateway: GatewayFactory, fake_clock: FakeClock
) -> None:
    # One token per second, so the second caller waits for budget while the first is in flight.
    gateway = make_gateway(clock=fake_clock, requests_per_minute=60, burst=1)
    fault_mint.delay_s = 0.3
    fault_mint.script(Fault.RATE_LIMIT)
    first = asyncio.create_task(timed(gateway.check(new_ys(2), deadline_s=5)))
    await asyncio.sleep(0.1)
    elapsed, error = await timed(gateway.check(new_ys(2), deadline_s=5))
    assert isinstance(error, MintRateLimited)
    assert elapsed < 0.5  # told when the 429 came (~0.2 s later), not after a token or deadline
    _, first_error = await first
    assert isinstance(first_error, MintRateLimited)
    assert fault_mint.request_count == 1


# --- 5xx, breaker ----------------------------------------------------------------------------


async def test_server_errors_are_retried_then_fail_as_transport_error(
    fault_mint: FaultMint, make_gateway: GatewayFactory
) -> None:
    gateway = make_gateway(max_retries=2)
    fault_mint.script(Fault.SERVER_ERROR, Fault.SERVER_ERROR)
    ys = new_ys(4)
    fault_mint.states[ys[0]] = MintState.SPENT
    result = await gateway.check(ys)
    assert result[ys[0]] is MintState.SPENT
    assert fault_mint.request_count == 3
    assert gateway.health is MintHealth.OK

    fault_mint.default = Fault.SERVER_ERROR
    with pytest.raises(MintTransportError) as error:
        await gateway.check(new_ys(4))
    assert "HTTP 500" in str(error.value)
    assert fault_mint.request_count == 3 + 3  # one try and two retries
    assert gateway.health is MintHealth.DEGRADED


async def test_breaker_opens_after_repeated_failures_and_a_probe_closes_it(
    fault_mint: FaultMint, make_gateway: GatewayFactory, fake_clock: FakeClock
) -> None:
    gateway = make_gateway(clock=fake_clock, breaker_failures=2, max_retries=0)
    changes = record_health(gateway)
    fault_mint.default = Fault.SERVER_ERROR
    for _ in range(2):
        with pytest.raises(MintTransportError):
            await gateway.check(new_ys(1))
    assert fault_mint.request_count == 2
    assert gateway.health is MintHealth.CIRCUIT_OPEN

    elapsed, error = await timed(gateway.check(new_ys(1)))
    assert isinstance(error, MintCircuitOpen)
    assert error.retry_after == pytest.approx(30)
    assert elapsed < 0.05
    assert fault_mint.request_count == 2

    fake_clock.advance(30)  # half-open: one probe; it fails, so another full cool-down
    with pytest.raises(MintTransportError):
        await gateway.check(new_ys(1))
    assert fault_mint.request_count == 3
    with pytest.raises(MintCircuitOpen):
        await gateway.check(new_ys(1))

    fake_clock.advance(30)
    fault_mint.default = Fault.OK
    ys = new_ys(2)
    assert await gateway.check(ys) == dict.fromkeys(ys, MintState.UNSPENT)
    assert fault_mint.request_count == 4
    assert gateway.health is MintHealth.OK
    assert changes == [
        (MintHealth.OK, MintHealth.DEGRADED),
        (MintHealth.DEGRADED, MintHealth.CIRCUIT_OPEN),
        (MintHealth.CIRCUIT_OPEN, MintHealth.OK),
    ]


async def test_html_error_page_is_a_transient_server_error(
    fault_mint: FaultMint, make_gateway: GatewayFactory
) -> None:
    gateway = make_gateway(max_retries=1)
    fault_mint.default = Fault.HTML_ERROR
    with pytest.raises(MintTransportError) as error:
        await gateway.check(new_ys(3))
    assert "HTTP 502" in str(error.value)
    assert fault_mint.request_count == 2


async def test_reset_connections_are_retried_then_fail_as_transport_error(
    fault_mint: FaultMint, make_gateway: GatewayFactory
) -> None:
    gateway = make_gateway(max_retries=2)
    fault_mint.script(Fault.RESET)
    ys = new_ys(2)
    assert await gateway.check(ys) == dict.fromkeys(ys, MintState.UNSPENT)
    assert fault_mint.request_count == 2
    fault_mint.default = Fault.RESET
    with pytest.raises(MintTransportError):
        await gateway.check(new_ys(2))
    assert fault_mint.request_count == 2 + 3


async def test_connection_refused_fails_fast_as_transport_error(
    make_gateway: GatewayFactory,
) -> None:
    gateway = make_gateway(url=f"http://127.0.0.1:{free_port()}", max_retries=2)
    elapsed, error = await timed(gateway.check(new_ys(2), deadline_s=2))
    assert isinstance(error, MintTransportError)
    assert elapsed < 1.0


async def test_retries_never_outlast_the_deadline(make_gateway: GatewayFactory) -> None:
    gateway = make_gateway(url=f"http://127.0.0.1:{free_port()}", max_retries=5, retry_backoff_s=2)
    elapsed, error = await timed(gateway.check(new_ys(2), deadline_s=1))
    assert isinstance(error, MintTransportError | MintDeadlineExceeded)
    assert elapsed < 1.2


# --- answers we cannot trust -----------------------------------------------------------------


@pytest.mark.parametrize(
    "fault",
    [
        Fault.HTML_200,
        Fault.MALFORMED_JSON,
        Fault.WRONG_SHAPE,
        Fault.MISSING_Y,
        Fault.EXTRA_Y,
        Fault.DUPLICATE_Y,
        Fault.UNKNOWN_STATE,
    ],
)
async def test_bad_answers_are_refused_and_nothing_is_cached(
    fault_mint: FaultMint, make_gateway: GatewayFactory, fault: Fault
) -> None:
    gateway = make_gateway()
    ys = new_ys(5)
    for y in ys:
        fault_mint.states[y] = MintState.SPENT
    fault_mint.script(fault)
    with pytest.raises(MintProtocolError) as error:
        await gateway.check(ys)
    assert not isinstance(error.value, CanaryMismatch)
    assert fault_mint.request_count == 1  # a wrong answer is not retried
    assert not any(gateway.is_known_spent(y) for y in ys)
    assert all(gateway.last_seen(y) is None for y in ys)
    assert gateway.health is MintHealth.DEGRADED

    assert await gateway.check(ys) == dict.fromkeys(ys, MintState.SPENT)  # asks again
    assert fault_mint.request_count == 2
    assert await gateway.check(ys) == dict.fromkeys(ys, MintState.SPENT)  # now from the cache
    assert fault_mint.request_count == 2
    assert gateway.health is MintHealth.OK


# --- deadlines -------------------------------------------------------------------------------


async def test_a_stalled_mint_fails_each_caller_at_its_own_deadline(
    fault_mint: FaultMint, make_gateway: GatewayFactory
) -> None:
    gateway = make_gateway(request_timeout_s=5)
    fault_mint.default = Fault.STALL  # 10 s
    slow, fast = await asyncio.gather(
        timed(gateway.check(new_ys(3), deadline_s=2)),
        timed(gateway.check(new_ys(3), deadline_s=0.5)),
    )
    assert isinstance(fast[1], MintDeadlineExceeded)
    assert 0.45 <= fast[0] < 0.8
    assert isinstance(slow[1], MintDeadlineExceeded)
    assert 1.9 <= slow[0] < 2.5
    assert fault_mint.request_count == 1  # both callers shared one request
    # A caller's deadline cut the request short: that says nothing about the mint's health.
    assert gateway.health is MintHealth.OK


async def test_a_mint_slower_than_the_request_timeout_is_retried_and_counts_as_failing(
    fault_mint: FaultMint, make_gateway: GatewayFactory
) -> None:
    gateway = make_gateway(request_timeout_s=0.3, max_retries=1)
    fault_mint.default = Fault.STALL
    elapsed, error = await timed(gateway.check(new_ys(2), deadline_s=3))
    assert isinstance(error, MintTransportError)
    assert "no answer within 0.30 s" in str(error)
    assert 0.6 <= elapsed < 1.2  # two attempts of 0.3 s and a short backoff
    assert fault_mint.request_count == 2
    assert gateway.health is MintHealth.DEGRADED


async def test_a_caller_with_no_time_for_the_next_token_fails_at_once(
    fault_mint: FaultMint, make_gateway: GatewayFactory, fake_clock: FakeClock
) -> None:
    gateway = make_gateway(clock=fake_clock, requests_per_minute=1, burst=1)
    await gateway.check(new_ys(1))
    elapsed, error = await timed(gateway.check(new_ys(1), deadline_s=2))
    assert isinstance(error, MintRateLimited)  # our own budget: the next token is 60 s away
    assert error.retry_after == pytest.approx(60)
    assert elapsed < 0.2
    assert fault_mint.request_count == 1


# --- too long: halving -----------------------------------------------------------------------


TOO_LONG_SIGNALS = [s for s in TooLongStyle if s is not TooLongStyle.HTML_400]


@pytest.mark.parametrize("style", TOO_LONG_SIGNALS)
async def test_too_long_requests_are_halved_and_answers_stay_complete(
    fault_mint: FaultMint, make_gateway: GatewayFactory, style: TooLongStyle
) -> None:
    gateway = make_gateway()
    fault_mint.max_ys = 100
    fault_mint.too_long_style = style
    ys = new_ys(350)
    truth = {y: list(MintState)[i % 3] for i, y in enumerate(ys)}
    fault_mint.states.update(truth)
    assert await gateway.check(ys) == truth
    assert gateway.effective_limit <= 100
    answered = [r for r in fault_mint.checkstate_requests if len(r) <= 100]
    assert sorted(y for r in answered for y in r) == sorted(ys)

    before = fault_mint.request_count
    more = new_ys(250)
    assert await gateway.check(more) == dict.fromkeys(more, MintState.UNSPENT)
    later = fault_mint.checkstate_requests[before:]
    assert all(len(r) <= gateway.effective_limit for r in later)  # learned: no more refusals
    assert len(later) == -(-250 // gateway.effective_limit)


async def test_finding_13_a_non_json_4xx_never_shrinks_the_limit(
    fault_mint: FaultMint, make_gateway: GatewayFactory
) -> None:
    """A proxy's HTML 400 is not "too many Ys": the check fails closed, the limit stays."""
    gateway = make_gateway(max_retries=0, breaker_failures=1000)
    fault_mint.max_ys = 100
    fault_mint.too_long_style = TooLongStyle.HTML_400
    for _ in range(12):
        with pytest.raises(MintProtocolError):
            await gateway.check(new_ys(350))
    assert gateway.effective_limit == 1000
    fault_mint.max_ys = None  # the proxy glitch is over: full requests again
    ys = new_ys(900)
    assert await gateway.check(ys) == dict.fromkeys(ys, MintState.UNSPENT)
    assert len(fault_mint.checkstate_requests[-1]) == 900


async def test_finding_13_a_halved_limit_grows_back(
    fault_mint: FaultMint, make_gateway: GatewayFactory
) -> None:
    gateway = make_gateway(limiter_model="none")
    fault_mint.script(Fault.TOO_LONG_11014)  # one glitch
    await gateway.check(new_ys(10))
    assert gateway.effective_limit == 5
    for _ in range(200):  # 20 full answers per doubling: 5, 10, ... 640, then the cap
        await gateway.check(new_ys(gateway.effective_limit))
    assert gateway.effective_limit == 1000


async def test_cashu_code_11014_halves_the_batch(
    fault_mint: FaultMint, make_gateway: GatewayFactory
) -> None:
    gateway = make_gateway()
    fault_mint.script(Fault.TOO_LONG_11014)
    ys = new_ys(10)
    assert await gateway.check(ys) == dict.fromkeys(ys, MintState.UNSPENT)
    assert [len(r) for r in fault_mint.checkstate_requests] == [10, 5, 5]
    assert gateway.effective_limit == 5


async def test_a_mint_refusing_even_one_y_is_a_protocol_error(
    fault_mint: FaultMint, make_gateway: GatewayFactory
) -> None:
    gateway = make_gateway()
    fault_mint.max_ys = 0
    with pytest.raises(MintProtocolError):
        await gateway.check(new_ys(4))
    assert max(len(r) for r in fault_mint.checkstate_requests[-2:]) == 1


async def test_the_advertised_limit_is_used(
    fault_mint: FaultMint, make_gateway: GatewayFactory
) -> None:
    fault_mint.info = {"nuts": {"7": {"supported": True}, "29": {"max_batch_size": 40}}}
    gateway = make_gateway(max_batch_size=1000)
    await gateway.check(new_ys(1))
    for _ in range(100):  # /v1/info is read in the background, never delaying a batch
        if gateway.effective_limit == 40:
            break
        await asyncio.sleep(0.01)
    assert gateway.effective_limit == 40
    assert fault_mint.info_requests == 1
    before = fault_mint.request_count
    await gateway.check(new_ys(100))
    assert [len(r) for r in fault_mint.checkstate_requests[before:]] == [40, 40, 20]


# --- canary ----------------------------------------------------------------------------------


async def test_canary_rides_along_and_a_non_spent_canary_refuses_the_answer(
    fault_mint: FaultMint, make_gateway: GatewayFactory
) -> None:
    canary = new_ys(1)[0]
    gateway = make_gateway(canaries={fault_mint.url: canary})
    fault_mint.states[canary] = MintState.SPENT
    ys = new_ys(3)
    assert await gateway.check(ys) == dict.fromkeys(ys, MintState.UNSPENT)  # canary not shown
    assert fault_mint.checkstate_requests[-1] == [*ys, canary]

    fault_mint.states[canary] = MintState.UNSPENT  # e.g. a mint answering UNSPENT for everything
    others = new_ys(3)
    for y in others:
        fault_mint.states[y] = MintState.SPENT
    with pytest.raises(CanaryMismatch):
        await gateway.check(others)
    assert not any(gateway.is_known_spent(y) for y in others)
    assert all(gateway.last_seen(y) is None for y in others)
    assert gateway.health is MintHealth.DEGRADED

    fault_mint.states[canary] = MintState.SPENT
    assert await gateway.check([canary]) == {canary: MintState.SPENT}
    assert fault_mint.checkstate_requests[-1] == [canary]  # asked once, not twice


async def test_canary_takes_a_slot_of_the_limit(
    fault_mint: FaultMint, make_gateway: GatewayFactory
) -> None:
    canary = new_ys(1)[0]
    fault_mint.states[canary] = MintState.SPENT
    gateway = make_gateway(canaries={fault_mint.url: canary}, max_batch_size=10)
    await gateway.check(new_ys(20))
    assert sorted(len(r) for r in fault_mint.checkstate_requests) == [3, 10, 10]


# --- the sweep's budget ----------------------------------------------------------------------


async def test_sweep_never_waits_and_never_takes_the_preflight_reserve(
    fault_mint: FaultMint, make_gateway: GatewayFactory, fake_clock: FakeClock
) -> None:
    gateway = make_gateway(clock=fake_clock, requests_per_minute=40, burst=5)
    allowance = gateway.sweep_allowance()
    assert allowance.requests == 1
    assert allowance.ys == 1000
    await gateway.check(new_ys(5), source=Source.SWEEP)
    assert gateway.sweep_allowance().requests == 0
    elapsed, error = await timed(gateway.check(new_ys(5), source=Source.SWEEP))
    assert isinstance(error, MintRateLimited)
    assert elapsed < 0.05
    assert fault_mint.request_count == 1
    for _ in range(4):  # the preflight reserve is intact
        await gateway.check(new_ys(2), deadline_s=0.5)
    assert fault_mint.request_count == 5


async def test_sweep_ys_ride_free_with_preflight_requests(
    fault_mint: FaultMint, make_gateway: GatewayFactory, fake_clock: FakeClock
) -> None:
    gateway = make_gateway(clock=fake_clock, requests_per_minute=40, burst=2)
    await gateway.check(new_ys(1), source=Source.SWEEP)  # the sweep's whole spare budget
    assert gateway.sweep_allowance().requests == 0
    sweep_ys, preflight_ys = new_ys(50), new_ys(5)
    swept, checked = await asyncio.gather(
        gateway.check(sweep_ys, source=Source.SWEEP), gateway.check(preflight_ys)
    )
    assert set(swept) == set(sweep_ys)
    assert set(checked) == set(preflight_ys)
    assert fault_mint.request_count == 2
    assert sorted(fault_mint.checkstate_requests[-1]) == sorted(sweep_ys + preflight_ys)


# --- the mint's limiter (elastic, as Nutshell's) ---------------------------------------------


def mint_requests(fault_mint: FaultMint) -> int:
    """Everything the limiter would count: checkstates and /v1/info reads."""
    return fault_mint.request_count + fault_mint.info_requests


async def test_a_spent_budget_fails_callers_at_once_until_a_quiet_window_passed(
    fault_mint: FaultMint, make_gateway: GatewayFactory, fake_clock: FakeClock
) -> None:
    gateway = make_gateway(
        clock=fake_clock,
        limiter_model="elastic",
        limiter_limit=5,
        limiter_margin=0,
        limiter_widen_after=1,  # no held batches: this fake clock does not move by itself
    )
    spent = new_ys(1)[0]
    fault_mint.states[spent] = MintState.SPENT
    assert await gateway.check([spent]) == {spent: MintState.SPENT}
    while mint_requests(fault_mint) < 5:  # /v1/info may have taken one of the five
        await gateway.check(new_ys(2))
        fake_clock.advance(10)  # never a quiet minute: the session goes on
    assert mint_requests(fault_mint) == 5

    elapsed, error = await timed(gateway.check(new_ys(2), deadline_s=2))
    assert isinstance(error, MintRateLimited)  # fail closed, at once, and the mint hears nothing
    assert elapsed < 0.05
    assert error.retry_after == pytest.approx(50, abs=0.1)  # a full window after the last
    assert mint_requests(fault_mint) == 5
    assert gateway.health is MintHealth.OK  # our own pacing, not the mint refusing us
    assert await gateway.check([spent]) == {spent: MintState.SPENT}  # the SPENT cache still works

    fake_clock.advance(49.9)
    with pytest.raises(MintRateLimited):  # 0.15 s of quiet left, more than this caller has
        await gateway.check(new_ys(2), deadline_s=0.1)
    fake_clock.advance(0.2)
    ys = new_ys(2)
    assert await gateway.check(ys) == dict.fromkeys(ys, MintState.UNSPENT)
    assert fault_mint.request_count + fault_mint.info_requests == 6


async def test_a_caller_whose_deadline_reaches_past_the_quiet_waits_for_it(
    fault_mint: FaultMint, make_gateway: GatewayFactory
) -> None:
    gateway = make_gateway(
        limiter_model="elastic",
        limiter_limit=2,
        limiter_margin=0,
        limiter_window_s=0.5,
        limiter_widen_after=1,
    )
    while mint_requests(fault_mint) < 2:
        await gateway.check(new_ys(1))
    (patient_s, patient), (hasty_s, hasty) = await asyncio.gather(
        timed(gateway.check(new_ys(2), deadline_s=3)),
        timed(gateway.check(new_ys(2), deadline_s=0.3)),
    )
    assert isinstance(hasty, MintRateLimited)
    assert hasty_s < 0.05
    assert isinstance(patient, dict) and set(patient.values()) == {MintState.UNSPENT}
    assert 0.4 <= patient_s < 1.5  # it waited out the quiet window (0.5 s)


async def test_a_low_budget_widens_the_gathering_window(
    fault_mint: FaultMint, make_gateway: GatewayFactory
) -> None:
    gateway = make_gateway(
        limiter_model="elastic",
        limiter_limit=6,
        limiter_margin=0,
        limiter_widen_after=0.5,
        limiter_max_gather_ms=300,
    )
    while mint_requests(fault_mint) < 3:  # half the budget: from now on batches are held
        await gateway.check(new_ys(1))
    before = fault_mint.request_count

    async def later(delay: float, ys: list[str], deadline: float = 2.0) -> tuple[float, Any]:
        await asyncio.sleep(delay)
        return await timed(gateway.check(ys, deadline_s=deadline))

    waves = [new_ys(2) for _ in range(5)]
    results = await asyncio.gather(*(later(0.04 * i, ys) for i, ys in enumerate(waves)))
    assert all(isinstance(r, dict) for _, r in results)
    assert fault_mint.request_count == before + 1  # five callers, one request
    assert sorted(fault_mint.checkstate_requests[-1]) == sorted(y for w in waves for y in w)
    assert results[0][0] >= 0.25  # the first caller waited for the others (up to 300 ms)

    # A held batch still goes in time for its most urgent caller.
    urgent_s, urgent = await timed(gateway.check(new_ys(2), deadline_s=0.45))
    assert isinstance(urgent, dict)
    assert urgent_s < 0.45


async def test_request_headers_go_to_their_mint(
    fault_mint: FaultMint, make_gateway: GatewayFactory
) -> None:
    gateway = make_gateway(
        request_headers={fault_mint.url: {"X-Forwarded-For": "203.0.113.7", "X-Tenant": "a"}}
    )
    await gateway.check(new_ys(2))
    for _ in range(100):  # /v1/info is read in the background
        if fault_mint.info_requests:
            break
        await asyncio.sleep(0.01)
    assert len(fault_mint.headers_seen) == 2
    for headers in fault_mint.headers_seen:
        assert headers["X-Forwarded-For"] == "203.0.113.7"
        assert headers["X-Tenant"] == "a"
