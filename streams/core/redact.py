"""What the dead-letter topic may keep of a message: known contract fields, and nothing else.

The old dead-letter record kept the raw input and masked what *looked* secret. Input can hide a
secret in any shape (a Cashu token, a secret used as a key, short-key or tuple proofs, odd
encodings), so the rule is turned around: keep only what the contract names, in the shape the
contract gives it, and replace everything else by its length and a hash. The hash lets an
operator see that two bad messages carried the same value, never the value.

    {"request_id": "r-1", "proofs": [{"secret": "…", "amount": 1}], "x9f…": "cashuB…"}
 →  {"request_id": "r-1", "proofs": [{"secret": "[scrubbed]", "amount": 1}],
     "<key 64 chars sha256:1c0e…>": "<str 412 chars sha256:93ab…>"}

A known field keeps a string value only when it is short and plain (an id, an enum value, a URL,
a timestamp); a proof keeps `Y`, `amount`, `keyset_id`, `token_id`; `secret` is replaced outright.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from typing import Any

from streams.core.cashu import SCRUBBED, scrub_text

MAX_KEPT_TEXT = 256
MAX_LISTED = 20

# The top-level fields of every wallet-facing input and of what the worker reads internally.
TOP_LEVEL_FIELDS = frozenset(
    {
        "event_id",
        "npub",
        "token_id",
        "mint_url",
        "status",
        "version",
        "occurred_at",
        "transaction_type",
        "proofs",
        "request_id",
        "quote_id",
        "amount",
        "requested_at",
        "reply_to",
        "deadline_ms",
        "source",
        "observed_at",
        "observation_id",
        "include_absent",
        "signature",
    }
)
PROOF_FIELDS = frozenset({"Y", "amount", "keyset_id", "token_id", "state"})
SECRET_FIELDS = frozenset({"secret"})
# A plain value: what ids, enum values, URLs and timestamps are made of. No quotes, no spaces.
_PLAIN = re.compile(r"[A-Za-z0-9._:/+=@-]{1,256}")
_NPUB = re.compile(r"npub1[0-9a-z]{6,120}")
# Cashu tokens (NUT-00 V3 `cashuA…`, V4 `cashuB…`) carry whole proofs, secrets included.
_CASHU_TOKEN = re.compile(r"cashu[AB]", re.IGNORECASE)


def fingerprint(value: str | bytes, kind: str = "str") -> str:
    """`<kind N chars sha256:…>`: a stand-in that says how long a value was and which it was."""
    data = value.encode("utf-8", "surrogatepass") if isinstance(value, str) else value
    unit = "bytes" if isinstance(value, bytes) else "chars"
    return f"<{kind} {len(value)} {unit} sha256:{hashlib.sha256(data).hexdigest()[:16]}>"


def is_plain(value: str) -> bool:
    """Short, made of id characters, and not a Cashu token."""
    return bool(_PLAIN.fullmatch(value)) and not _CASHU_TOKEN.search(value)


def redact_raw(raw: bytes | str | None) -> str:
    """The dead-letter `raw`: the message with only known contract fields kept (see module)."""
    if raw is None:
        return ""
    try:
        data = json.loads(raw)
    except (ValueError, RecursionError):
        return fingerprint(raw, "not JSON")
    if not isinstance(data, dict):
        return fingerprint(raw, "not a JSON object")
    redacted = _object(data, TOP_LEVEL_FIELDS)
    # Belt and braces: the result is built from kept values only, but scrub it all the same.
    return scrub_text(json.dumps(redacted, ensure_ascii=False, separators=(",", ":")))


def redact_key(key: bytes | None) -> str | None:
    """The Kafka key when it reads as an npub (what wallet-facing topics are keyed by); else its
    fingerprint: a producer may have keyed a message by anything, a secret included."""
    if key is None:
        return None
    try:
        text = key.decode("utf-8")
    except UnicodeDecodeError:
        return fingerprint(key, "key")
    return text if _NPUB.fullmatch(text) else fingerprint(key, "key")


def _object(data: Mapping[Any, Any], known: frozenset[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in list(data.items())[: MAX_LISTED * 2]:
        name = str(key)
        if name in SECRET_FIELDS:
            out[name] = SCRUBBED
        elif name in known:
            out[name] = _proofs(value) if name == "proofs" else _scalar(value)
        else:
            out[fingerprint(name, "key")] = _anything(value)
    if len(data) > MAX_LISTED * 2:
        out["<more>"] = len(data) - MAX_LISTED * 2
    return out


def _proofs(value: Any) -> Any:
    if not isinstance(value, list):
        return _anything(value)
    kept: list[Any] = [
        _object(item, PROOF_FIELDS) if isinstance(item, dict) else _anything(item)
        for item in value[:MAX_LISTED]
    ]
    if len(value) > MAX_LISTED:
        kept.append(f"<{len(value) - MAX_LISTED} more>")
    return kept


def _scalar(value: Any) -> Any:
    if value is None or isinstance(value, bool | int | float):
        return value
    if isinstance(value, str):
        return value if is_plain(value) else fingerprint(value)
    return _anything(value)


def _anything(value: Any) -> Any:
    """A value under an unknown key: numbers survive (no secret is a number), nothing else."""
    if value is None or isinstance(value, bool | int | float):
        return value
    if isinstance(value, str):
        return fingerprint(value)
    if isinstance(value, list):
        return f"<list of {len(value)}>"
    if isinstance(value, dict):
        return f"<object of {len(value)}>"
    return f"<{type(value).__name__}>"
