"""NUT-17 proof-state subscriptions on the wire: requests, strict reading of what a mint sends,
and whether a mint offers them at all. No I/O here.

What real mints send (Nutshell 0.20.2, read in cashu/mint/events/client.py and measured):

- a response `{"jsonrpc": "2.0", "result": {"status": "OK", "subId": S}, "id": N}` to every
  subscribe and unsubscribe, usually before the first notification of that subscription;
- notifications `{"jsonrpc": "2.0", "method": "subscribe", "params": {"subId": S, "payload":
  {"Y": Y, "state": "UNSPENT"|"PENDING"|"SPENT", "witness": str|null}}}` (the witness key is
  left out of live events);
- errors `{"jsonrpc": "2.0", "error": {"code": C, "message": M}, "id": N}`. A message the mint's
  rate limiter refused is answered with `id: 0` (Nutshell does not say which request it dropped);
  NUT-17's own example writes the id as a string.

A mint answers UNSPENT for any Y it never saw, so a misread notification fails silently. Hence the
strictness: a notification is used only if every field is exactly as NUT-17 defines it, and the
connection then checks that its subId is ours and that the Y is one that subscription asked for.
Unknown extra keys are tolerated (forward compatibility); wrong types or values are not.
"""

from __future__ import annotations

import json
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from streams.core.cashu import is_valid_y
from streams.core.domain import MintState

WS_PATH = "/v1/ws"
PROOF_STATE = "proof_state"
NUT17 = "17"
_STATES = {state.value: state for state in MintState}
# Error messages are the mint's text: kept only for debug logs, and never longer than this.
_MAX_ERROR_TEXT = 200
# Our subIds: short, unguessable enough to never collide with another client's on a shared socket.
_SUB_ID_BYTES = 12


@dataclass(frozen=True, slots=True)
class Response:
    """A successful answer to our request `id` about subscription `sub_id`."""

    id: int
    sub_id: str


@dataclass(frozen=True, slots=True)
class ErrorResponse:
    """A JSON-RPC error. `id` is None when the mint did not say which request it refers to
    (Nutshell answers a rate-limited message with id 0; our ids start at 1)."""

    id: int | None
    code: int
    message: str


@dataclass(frozen=True, slots=True)
class Notification:
    """A proof's state pushed for subscription `sub_id`; `y` is lowercase and a valid point."""

    sub_id: str
    y: str
    state: MintState
    witness: str | None


@dataclass(frozen=True, slots=True)
class Malformed:
    """Anything we cannot trust. `reason` names the defect; it never quotes a payload."""

    reason: str


Message = Response | ErrorResponse | Notification | Malformed


# --- requests --------------------------------------------------------------------------------


def ws_url(mint_url: str) -> str:
    """The NUT-17 endpoint of a mint: http(s) becomes ws(s); a path prefix is kept."""
    parts = urlsplit(mint_url.strip().rstrip("/"))
    scheme = {"http": "ws", "https": "wss", "ws": "ws", "wss": "wss"}.get(parts.scheme.lower())
    if scheme is None or not parts.netloc:
        raise ValueError("a mint URL needs an http(s) scheme and a host")
    return urlunsplit((scheme, parts.netloc.lower(), parts.path + WS_PATH, "", ""))


def new_sub_id(rng: random.Random) -> str:
    return rng.randbytes(_SUB_ID_BYTES).hex()


def subscribe_request(request_id: int, sub_id: str, ys: Sequence[str]) -> str:
    params = {"kind": PROOF_STATE, "subId": sub_id, "filters": list(ys)}
    return _request(request_id, "subscribe", params)


def unsubscribe_request(request_id: int, sub_id: str) -> str:
    return _request(request_id, "unsubscribe", {"subId": sub_id})


def _request(request_id: int, method: str, params: dict[str, Any]) -> str:
    body = {"jsonrpc": "2.0", "id": request_id, "method": method, "params": params}
    return json.dumps(body, separators=(",", ":"))


# --- reading what the mint sends ---------------------------------------------------------------


def parse_message(text: str) -> Message:
    """Classify one text frame from the mint; never raises."""
    try:
        data = json.loads(text)
    except ValueError:
        return Malformed("not JSON")
    if not isinstance(data, dict):
        return Malformed("not a JSON object")
    if data.get("jsonrpc") != "2.0":
        return Malformed('jsonrpc is not "2.0"')
    if "method" in data:
        return _notification(data)
    if "error" in data:
        return _error(data)
    if "result" in data:
        return _response(data)
    return Malformed("neither a response, an error nor a notification")


def _notification(data: dict[str, Any]) -> Notification | Malformed:
    if data["method"] != "subscribe":
        return Malformed("notification method is not subscribe")
    params = data.get("params")
    if not isinstance(params, dict):
        return Malformed("notification has no params object")
    sub_id, payload = params.get("subId"), params.get("payload")
    if not isinstance(sub_id, str) or not sub_id:
        return Malformed("notification has no subId")
    if not isinstance(payload, dict):
        return Malformed("notification has no payload object")
    y, state, witness = payload.get("Y"), payload.get("state"), payload.get("witness")
    if not is_valid_y(y):
        return Malformed("payload Y is not a compressed secp256k1 point")
    if not isinstance(state, str) or state not in _STATES:
        return Malformed("payload state is not UNSPENT, PENDING or SPENT")
    if witness is not None and not isinstance(witness, str):
        return Malformed("payload witness is neither a string nor null")
    assert isinstance(y, str)  # is_valid_y checked it
    return Notification(sub_id, y.lower(), _STATES[state], witness)


def _response(data: dict[str, Any]) -> Response | Malformed:
    request_id = _request_id(data.get("id"))
    result = data["result"]
    if request_id is None:
        return Malformed("response without a usable id")
    if not isinstance(result, dict) or result.get("status") != "OK":
        return Malformed('response result status is not "OK"')
    sub_id = result.get("subId")
    if not isinstance(sub_id, str) or not sub_id:
        return Malformed("response result has no subId")
    return Response(request_id, sub_id)


def _error(data: dict[str, Any]) -> ErrorResponse | Malformed:
    error = data["error"]
    if not isinstance(error, dict):
        return Malformed("error is not an object")
    code, message = error.get("code"), error.get("message")
    if not isinstance(code, int) or isinstance(code, bool):
        return Malformed("error code is not an integer")
    text = message[:_MAX_ERROR_TEXT] if isinstance(message, str) else ""
    return ErrorResponse(_request_id(data.get("id")), code, text)


def _request_id(value: object) -> int | None:
    """Our request ids are positive integers; a digit string is read as one (NUT-17's example)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, str) and value.isdigit():
        value = int(value)
    if isinstance(value, int) and value > 0:
        return value
    return None


# --- does the mint offer it? -------------------------------------------------------------------


def supports_proof_state(info: object) -> bool:
    """Whether a /v1/info document advertises NUT-17 `proof_state` subscriptions.

    `nuts["17"]["supported"]` is a list of {method, unit, commands}; any entry listing
    `proof_state` will do (proof states do not depend on the method or unit).
    """
    if not isinstance(info, Mapping):
        return False
    nuts = info.get("nuts")
    nut17 = nuts.get(NUT17) if isinstance(nuts, Mapping) else None
    supported = nut17.get("supported") if isinstance(nut17, Mapping) else None
    if not isinstance(supported, list):
        return False
    for entry in supported:
        commands = entry.get("commands") if isinstance(entry, Mapping) else None
        if isinstance(commands, list) and PROOF_STATE in commands:
            return True
    return False
