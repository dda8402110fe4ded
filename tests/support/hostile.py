"""Hypothesis strategies for hostile input: secrets in every shape, and messages that break the
contract in every way the safety review listed (and more).

Every planted secret has a random core of 24 hex characters behind a fixed marker, so a search of
any output for the core finds the secret in any encoding (escaped, double-encoded, cut). Cashu
tokens are built for real (`cashuA` + base64url of a V3 token holding the secret, `cashuB` +
bytes standing in for CBOR), so they are found by their own text as well.
"""

from __future__ import annotations

import base64
import json
import secrets as _random
from dataclasses import dataclass, field
from typing import Any

from hypothesis import strategies as st

from streams.core.cashu import y_from_secret

MARKER = "sEkReT"
VALID_Y = y_from_secret("a hostile campaign's valid-looking proof")
OFF_CURVE_Y = "02" + "ff" * 32  # right shape, not a curve point
JSON_SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False),
    st.text(max_size=30),
)
JSON_VALUES = st.recursive(
    JSON_SCALARS,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)


@dataclass
class Hostile:
    """One message to send: its Kafka key and value, and the secrets planted in it."""

    key: bytes | None
    value: bytes
    planted: list[str] = field(default_factory=list)  # strings that must never come out
    request_id: str | None = None  # a request_id the worker can read, if any
    kind: str = ""


@st.composite
def secret_core(draw: st.DrawFn) -> str:
    # Drawn from hypothesis for reproducibility, with a random tail so cores never collide.
    return MARKER + draw(st.text("0123456789abcdef", min_size=8, max_size=8)) + _random.token_hex(8)


def cashu_token_v3(secret: str) -> str:
    token = {
        "token": [
            {
                "mint": "https://mint.example",
                "proofs": [{"amount": 1, "id": "00ab", "secret": secret, "C": "02" + "ab" * 32}],
            }
        ]
    }
    raw = base64.urlsafe_b64encode(json.dumps(token).encode()).decode().rstrip("=")
    return "cashuA" + raw


def cashu_token_v4(secret: str) -> str:
    # Not real CBOR, but the same alphabet and the secret's bytes inside, as a V4 token holds it.
    raw = base64.urlsafe_b64encode(b"\xa2atx" + secret.encode() + b"\x00" * 7).decode().rstrip("=")
    return "cashuB" + raw


def melt_skeleton(npub: str, mint_url: str, request_id: str) -> dict[str, Any]:
    return {
        "request_id": request_id,
        "npub": npub,
        "mint_url": mint_url,
        "proofs": [{"Y": VALID_Y, "amount": 8, "keyset_id": "00ab"}],
        "requested_at": "2026-01-01T00:00:00Z",
    }


SECRET_SHAPES = (
    "proof_secret_with_extra",
    "token_v3_field",
    "token_v4_field",
    "secret_as_key",
    "secret_as_proof_key",
    "short_key_proof",
    "tuple_proof",
    "double_encoded",
    "named_variants",
    "secret_kafka_key",
    "escaped_secret",
    "non_utf8",
    "nut10_secret",
    "secret_too_long",
    "token_as_request_id",
    "token_as_npub",
)


@st.composite
def secret_message(draw: st.DrawFn, npub: str, mint_url: str, request_id: str) -> Hostile:
    """A melt request that is invalid because of (or despite) a secret planted in some shape."""
    core = draw(secret_core())
    shape = draw(st.sampled_from(SECRET_SHAPES))
    body = melt_skeleton(npub, mint_url, request_id)
    key: bytes | None = npub.encode()
    planted = [core]
    if shape == "proof_secret_with_extra":
        body["proofs"] = [{"secret": core, "amount": 8, "keyset_id": "00ab", "C": "02" + "ab" * 32}]
    elif shape in ("token_v3_field", "token_v4_field"):
        token = cashu_token_v3(core) if shape == "token_v3_field" else cashu_token_v4(core)
        planted.append(token)
        body[draw(st.sampled_from(["token", "quote_id", "memo", "transaction_type"]))] = token
    elif shape == "secret_as_key":
        body[core] = {"amount": 1}
    elif shape == "secret_as_proof_key":
        body["proofs"] = [{core: {"amount": 1, "C": "02"}}]
    elif shape == "short_key_proof":
        body["proofs"] = [{"a": 8, "s": core, "c": "02" + "cd" * 32}]
    elif shape == "tuple_proof":
        body["proofs"] = [[8, core, "02" + "cd" * 32]]
    elif shape == "double_encoded":
        body["note"] = json.dumps({"proofs": [{"secret": core}]})
    elif shape == "named_variants":
        name = draw(st.sampled_from(["Secret", "SECRET", "proof_secret", "secrets", "x_secret_y"]))
        body[name] = [core] if name == "secrets" else core
    elif shape == "secret_kafka_key":
        key = core.encode()
    elif shape == "escaped_secret":
        body["proofs"] = [
            {"secret": f'{core}"\\\u00e9\u2028', "amount": 8, "keyset_id": "00ab", "x": 1}
        ]
    elif shape == "non_utf8":
        return Hostile(key, b"\xff\xfe" + core.encode() + b"\x80", planted, None, shape)
    elif shape == "nut10_secret":
        nut10 = json.dumps(["P2PK", {"nonce": core, "data": "02" + "ab" * 32, "tags": []}])
        body["proofs"] = [{"secret": nut10, "amount": 8, "keyset_id": "00ab", "w": "x"}]
    elif shape == "secret_too_long":
        body["proofs"] = [{"secret": core * 200, "amount": 8, "keyset_id": "00ab"}]
    elif shape == "token_as_request_id":
        token = cashu_token_v3(core)
        planted.append(token)
        body["request_id"] = token
        request_id = ""
    elif shape == "token_as_npub":
        token = cashu_token_v3(core)
        planted.append(token)
        body["npub"] = token
        key = token.encode()
    value = json.dumps(body, ensure_ascii=draw(st.booleans())).encode()
    return Hostile(key, value, planted, request_id or None, shape)


CONTRACT_BREAKS = (
    "wrong_types",
    "huge_string",
    "huge_list",
    "deep_nesting",
    "off_curve_y",
    "duplicate_ys",
    "unknown_mint",
    "far_future",
    "negative_time",
    "non_utf8_key",
    "separator_ids",
    "reply_to_trick",
    "key_mismatch",
    "not_json",
    "not_an_object",
)


@st.composite
def broken_message(
    draw: st.DrawFn, npub: str, mint_url: str, request_id: str, reply_tricks: list[str]
) -> Hostile:
    """A melt request that breaks the contract without any secret in it."""
    kind = draw(st.sampled_from(CONTRACT_BREAKS))
    body: Any = melt_skeleton(npub, mint_url, request_id)
    key: bytes | None = npub.encode()
    rid: str | None = request_id
    if kind == "wrong_types":
        # Fields where no non-string value is valid (an epoch-ms requested_at would be).
        name = draw(st.sampled_from(["npub", "mint_url", "proofs", "request_id"]))
        body[name] = draw(JSON_VALUES.filter(lambda v: not isinstance(v, str)))
        rid = None if name == "request_id" else rid
    elif kind == "huge_string":
        body[draw(st.sampled_from(["quote_id", "mint_url", "npub"]))] = "x" * 200_000
    elif kind == "huge_list":
        body["proofs"] = [{"Y": VALID_Y, "amount": 1, "keyset_id": "00ab"}] * 5_000
    elif kind == "deep_nesting":
        depth = draw(st.integers(200, 3000))
        return Hostile(
            key, ('{"request_id":"' + request_id + '","x":' + "[" * depth).encode(), [], rid, kind
        )
    elif kind == "off_curve_y":
        body["proofs"] = [{"Y": OFF_CURVE_Y, "amount": 1, "keyset_id": "00ab"}]
    elif kind == "duplicate_ys":
        proof = {"Y": VALID_Y, "amount": 1, "keyset_id": "00ab"}
        body["proofs"] = [proof, {**proof, "Y": VALID_Y.upper()}]
    elif kind == "unknown_mint":
        body["mint_url"] = draw(
            st.sampled_from(["https://evil.example", "https://MINT.example:8443/x"])
        )
    elif kind == "far_future":
        body["requested_at"] = draw(st.sampled_from(["9999-12-31T23:59:59Z", 10**15]))
        body["deadline_ms"] = draw(st.sampled_from([10**9, -5, 0]))
    elif kind == "negative_time":
        body["requested_at"] = draw(
            st.sampled_from([-1, "-0001-01-01T00:00:00Z", "1969-12-31T23:59:59Z"])
        )
        body["amount"] = draw(st.sampled_from([-1, 0, 2**64]))
    elif kind == "non_utf8_key":
        key = b"\xff" + npub.encode() + b"\xc3"
    elif kind == "separator_ids":
        body["npub"] = draw(
            st.sampled_from([npub + "|x", '"' + npub + '"', npub + "\\", npub + " "])
        )
    elif kind == "reply_to_trick":
        body["reply_to"] = draw(st.sampled_from(reply_tricks))
    elif kind == "key_mismatch":
        key = draw(st.sampled_from([json.dumps(npub).encode(), b"", npub.upper().encode(), None]))
    elif kind == "not_json":
        return Hostile(key, draw(st.binary(min_size=1, max_size=200)), [], None, kind)
    elif kind == "not_an_object":
        body = draw(st.lists(JSON_SCALARS, max_size=3) | JSON_SCALARS)
        rid = None
    value = json.dumps(body).encode()
    return Hostile(key, value, [], rid, kind)
