"""HTTP to one mint: send a checkstate, read /v1/info. Mechanism only; what to do about an answer
(retry, halve, go silent, open the circuit) is the gateway's policy.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

import httpx

from streams.mint.observer import RequestOutcome
from streams.mint.protocol import (
    CHECKSTATE_PATH,
    INFO_PATH,
    BadAnswer,
    RateLimited,
    ServerError,
    States,
    TooLong,
    checkstate_body,
    interpret_checkstate,
)

# A mint's answer is ~110 bytes per Y; a witness can add ~1 KiB. Beyond this it is not an answer,
# and reading it whole would let a hostile mint exhaust our memory.
_BODY_BASE_BYTES = 64 * 1024
_BODY_PER_Y_BYTES = 4 * 1024


class Transient(NamedTuple):
    """An exchange that failed in a way worth retrying (no answer, or a 5xx)."""

    outcome: RequestOutcome
    detail: str
    # The attempt's timeout was what remained of the callers' deadline, not the mint's allowance:
    # running out of it says nothing about the mint's health.
    cut_by_deadline: bool = False


Exchange = States | TooLong | RateLimited | BadAnswer | Transient


class _BodyTooLarge(Exception):
    pass


class MintHttp:
    def __init__(
        self,
        mint_url: str,
        *,
        request_timeout_s: float,
        transport: httpx.AsyncBaseTransport | None = None,
        event_hooks: Mapping[str, list[Callable[..., Any]]] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        """`headers` are sent with every request (MintSettings.request_headers of this mint)."""
        self.request_timeout_s = request_timeout_s
        self._client = httpx.AsyncClient(
            base_url=mint_url,
            transport=transport,
            timeout=request_timeout_s,
            # A mint that redirects its API is not the mint on the allow-list.
            follow_redirects=False,
            headers={"Accept": "application/json", **(headers or {})},
            event_hooks=dict(event_hooks) if event_hooks else None,
        )

    async def checkstate(self, request_ys: list[str], timeout: float) -> Exchange:
        """POST /v1/checkstate for `request_ys` (distinct), bounded by `timeout` as a whole.

        httpx's timeouts bound each read, not the exchange: a mint trickling bytes could hold a
        caller forever, hence the outer bound.
        """
        try:
            async with asyncio.timeout(timeout):
                status, body = await self._post(request_ys)
        except TimeoutError:
            return Transient(
                RequestOutcome.TIMEOUT,
                f"no answer within {timeout:.2f} s",
                cut_by_deadline=timeout < self.request_timeout_s,
            )
        except httpx.TransportError as exc:
            return Transient(RequestOutcome.TRANSPORT_ERROR, type(exc).__name__)
        except _BodyTooLarge:
            return BadAnswer("answer body is implausibly large")
        answer = interpret_checkstate(status, body, request_ys)
        if isinstance(answer, ServerError):
            return Transient(RequestOutcome.SERVER_ERROR, f"HTTP {answer.status}")
        return answer

    async def _post(self, request_ys: list[str]) -> tuple[int, bytes]:
        cap = _BODY_BASE_BYTES + _BODY_PER_Y_BYTES * len(request_ys)
        async with self._client.stream(
            "POST",
            CHECKSTATE_PATH,
            content=checkstate_body(request_ys),
            headers={"Content-Type": "application/json"},
        ) as response:
            chunks: list[bytes] = []
            size = 0
            async for part in response.aiter_bytes():
                size += len(part)
                if size > cap:
                    raise _BodyTooLarge
                chunks.append(part)
            return response.status_code, b"".join(chunks)

    async def info(self, timeout: float) -> tuple[int, Any] | None:
        """GET /v1/info: (status, parsed JSON or None), or None if no answer came."""
        try:
            async with asyncio.timeout(timeout):
                response = await self._client.get(INFO_PATH)
        except (TimeoutError, httpx.HTTPError):
            return None
        try:
            return response.status_code, json.loads(response.content)
        except ValueError:
            return response.status_code, None

    async def aclose(self) -> None:
        await self._client.aclose()


def was_answered(result: Exchange) -> bool:
    """Did the mint answer (and so count) the request? No for timeouts and broken connections."""
    return not isinstance(result, Transient) or result.outcome is RequestOutcome.SERVER_ERROR


def outcome_of(result: Exchange) -> RequestOutcome:
    """The metrics label of an exchange."""
    if isinstance(result, States):
        return RequestOutcome.OK
    if isinstance(result, RateLimited):
        return RequestOutcome.RATE_LIMITED
    if isinstance(result, TooLong):
        return RequestOutcome.TOO_LONG
    if isinstance(result, Transient):
        return result.outcome
    return RequestOutcome.PROTOCOL_ERROR
