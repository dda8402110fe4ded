"""NUT-07 on the wire: request bodies and strict reading of a mint's answers. No I/O here.

A mint answers UNSPENT for any Y it never saw, so an answer we misread fails silently as "all
unspent". Hence the strictness: one state per requested Y, no more, no fewer, no duplicates, only
the three states NUT-07 defines. Anything else is a `BadAnswer`, and nothing from it is used.

Too-long requests are recognised only in the forms measured or documented: Nutshell's 422 with a
pydantic `too_long` detail, CDK's 400 with Cashu error code 11014, and a 413 from a proxy. The
caller halves and retries. Any other refusal — a proxy's HTML error page, CDK's plain-text 422 for
a malformed Y — is a BadAnswer: guessing "too long" from it would shrink every later request for
nothing (review finding 13).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from streams.core.domain import MintState

CHECKSTATE_PATH = "/v1/checkstate"
INFO_PATH = "/v1/info"
# Cashu error code for "request too long / too many inputs" (CDK answers it with HTTP 400).
CODE_TOO_LONG = 11014
_STATES = {state.value: state for state in MintState}


@dataclass(frozen=True, slots=True)
class States:
    """A valid answer: exactly one state per requested Y (keys are the requested Ys)."""

    states: dict[str, MintState]


@dataclass(frozen=True, slots=True)
class RateLimited:
    """HTTP 429. Real mints send no Retry-After; the caller stays silent for its own window."""


@dataclass(frozen=True, slots=True)
class TooLong:
    """The mint refuses this many Ys in one request: halve and retry."""

    reason: str


@dataclass(frozen=True, slots=True)
class ServerError:
    """A 5xx or 408: transient, worth a retry."""

    status: int


@dataclass(frozen=True, slots=True)
class BadAnswer:
    """An answer we cannot trust. `reason` names the defect, never a proof secret."""

    reason: str


Answer = States | RateLimited | TooLong | ServerError | BadAnswer


def checkstate_body(ys: Sequence[str]) -> bytes:
    return json.dumps({"Ys": list(ys)}, separators=(",", ":")).encode()


def interpret_checkstate(status: int, body: bytes, requested: Sequence[str]) -> Answer:
    """Read a /v1/checkstate answer to a request for the (distinct, lowercase) `requested` Ys."""
    if status == 429:
        return RateLimited()
    if status >= 500 or status == 408:
        return ServerError(status)
    if status != 200:
        return _interpret_refusal(status, body, len(requested))
    try:
        payload = json.loads(body)
    except ValueError:
        return BadAnswer("HTTP 200 but the body is not JSON")
    return _read_states(payload, requested)


def _read_states(payload: Any, requested: Sequence[str]) -> Answer:
    if not isinstance(payload, dict) or not isinstance(payload.get("states"), list):
        return BadAnswer('no "states" list in the answer')
    wanted = set(requested)
    states: dict[str, MintState] = {}
    for item in payload["states"]:
        if not isinstance(item, dict):
            return BadAnswer("a states entry is not an object")
        y, state, witness = item.get("Y"), item.get("state"), item.get("witness")
        if not isinstance(y, str):
            return BadAnswer("a states entry has no Y")
        y = y.lower()
        if y not in wanted:
            return BadAnswer(f"answer has a Y that was not asked for ({y[:12]}...)")
        if y in states:
            return BadAnswer(f"answer repeats a Y ({y[:12]}...)")
        if not isinstance(state, str) or state not in _STATES:
            return BadAnswer(f"unknown state {str(state)[:20]!r}")
        if witness is not None and not isinstance(witness, str):
            return BadAnswer("witness is neither a string nor null")
        states[y] = _STATES[state]
    if len(states) != len(wanted):
        return BadAnswer(f"answer lacks {len(wanted) - len(states)} of {len(wanted)} Ys")
    return States(states)


def _interpret_refusal(status: int, body: bytes, n_ys: int) -> Answer:
    try:
        payload: Any = json.loads(body)
    except ValueError:
        payload = None
    if isinstance(payload, dict):
        if payload.get("code") == CODE_TOO_LONG:
            return TooLong(f"HTTP {status}, Cashu error code {CODE_TOO_LONG}")
        detail = payload.get("detail")
        if status == 422 and isinstance(detail, list):
            return _interpret_validation_detail(detail)
    if status == 413:
        return TooLong("HTTP 413")
    code = payload.get("code") if isinstance(payload, dict) else None
    return BadAnswer(f"HTTP {status}" + (f", Cashu error code {code}" if code is not None else ""))


def _interpret_validation_detail(detail: list[Any]) -> Answer:
    """FastAPI/pydantic 422 details (Nutshell): a list-length error means too many Ys.

    An error located at one element (loc ends in an index) is a malformed Y, which halving would
    only chase down to that Y: report it as a bad answer at once.
    """
    for item in detail:
        if not isinstance(item, dict):
            continue
        loc = item.get("loc")
        if item.get("type") == "too_long" and isinstance(loc, list) and loc[-1:] == ["Ys"]:
            return TooLong("HTTP 422: list too long")
        if isinstance(loc, list) and loc and isinstance(loc[-1], int):
            return BadAnswer("HTTP 422: the mint rejected a Y as malformed")
    return BadAnswer("HTTP 422")


def advertised_limit(info: Any) -> int | None:
    """The most Ys per checkstate a mint advertises in GET /v1/info, or None if it says nothing.

    Tolerant by design: a field we do not understand is ignored, never an error. Read, in order:
    NUT-06's top-level `max_array_length` (CDK advertises it), an explicit NUT-07 limit
    (`nuts["7"]`'s max_request_length / max_batch_size / max_inputs, as newer mints may advertise
    it), then Nutshell's `nuts["29"]["max_batch_size"]`: Nutshell 0.20.2 fills that from
    `mint_max_request_length`, the same setting that caps checkstate's Ys list.
    Halving on a too-long answer covers a mint whose hint turns out wrong.
    """
    if not isinstance(info, dict):
        return None
    # CDK: a top-level NUT-06 `max_array_length` bounds every list in a request.
    candidates: list[Any] = [info.get("max_array_length")]
    nuts: Any = info.get("nuts")
    if not isinstance(nuts, dict):
        nuts = {}
    nut7 = nuts.get("7")
    if isinstance(nut7, dict):
        candidates += [nut7.get(k) for k in ("max_request_length", "max_batch_size", "max_inputs")]
    nut29 = nuts.get("29")
    if isinstance(nut29, dict):
        candidates.append(nut29.get("max_batch_size"))
    for value in candidates:
        if isinstance(value, int) and not isinstance(value, bool) and value >= 1:
            return value
    return None
