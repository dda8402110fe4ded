"""Proof identity (NUT-00 hash_to_curve, Y) and secret scrubbing.

A proof's secret spends it; its Y only names it. Everything downstream of the edge works with Ys,
and everything that writes text (logs, the dead-letter topic) goes through `scrub`/`scrub_text`.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Mapping
from typing import Any

from coincurve import PublicKey

__all__ = [
    "SCRUBBED",
    "hash_to_curve",
    "is_secret_key",
    "is_valid_y",
    "looks_like_cashu_token",
    "scrub",
    "scrub_text",
    "scrub_tokens",
    "validate_y",
    "y_from_secret",
    "y_prefix",
]

DOMAIN_SEPARATOR = b"Secp256k1_HashToCurve_Cashu_"
SCRUBBED = "[scrubbed]"
Y_HEX_LENGTH = 66
Y_PREFIX_LENGTH = 12

_Y_SHAPE = re.compile(r"0[23][0-9a-fA-F]{64}")
# Ys recently found on the curve (lowercase). The curve check is most of what validating a Y costs
# (~5 µs), and a proof's Y comes back with each status change of its token and in its melts.
_ON_CURVE: dict[str, None] = {}
_ON_CURVE_MAX = 16_384


def hash_to_curve(message: bytes) -> bytes:
    """NUT-00: map `message` to a compressed secp256k1 point (33 bytes).

    The first counter whose hash is the x-coordinate of a curve point (with even y, prefix 02) wins;
    the loop bound is the spec's, and in practice it ends after about two tries.
    """
    msg_hash = hashlib.sha256(DOMAIN_SEPARATOR + message).digest()
    for counter in range(2**16):
        candidate = hashlib.sha256(msg_hash + counter.to_bytes(4, "little")).digest()
        try:
            return bytes(PublicKey(b"\x02" + candidate).format(compressed=True))
        except ValueError:
            continue
    raise ValueError("hash_to_curve found no point")  # unreachable with overwhelming probability


def y_from_secret(secret: str) -> str:
    """A proof's Y: the secret hashed as its UTF-8 bytes (never hex-decoded), as lowercase hex."""
    return hash_to_curve(secret.encode("utf-8")).hex()


def is_valid_y(y: object) -> bool:
    """True if `y` is 66 hex characters (any case), prefix 02/03, and a point on the curve."""
    if not isinstance(y, str) or len(y) != Y_HEX_LENGTH or _Y_SHAPE.fullmatch(y) is None:
        return False
    lowered = y.lower()
    if lowered in _ON_CURVE:
        return True
    try:
        PublicKey(bytes.fromhex(lowered))
    except ValueError:
        return False
    if len(_ON_CURVE) >= _ON_CURVE_MAX:
        _ON_CURVE.clear()
    _ON_CURVE[lowered] = None
    return True


def validate_y(y: object) -> str:
    """Return `y` normalised to lowercase, or raise ValueError.

    The message never repeats the value: callers turn it into contract errors shown to producers.
    """
    if not is_valid_y(y):
        raise ValueError("Y must be a compressed secp256k1 point: 66 hex characters, prefix 02/03")
    assert isinstance(y, str)  # is_valid_y checked it; this narrows the type for mypy
    return y.lower()


def y_prefix(y: str) -> str:
    """A short, log-friendly form of a Y (Ys are public, but whole ones clutter log lines)."""
    return y[:Y_PREFIX_LENGTH]


# --- scrubbing ---------------------------------------------------------------------------------
#
# Two passes, because raw input may be anything. The structural pass reads JSON string literals and
# replaces the value after any secret-named key (escaped keys, nested containers, payloads encoded
# into strings). The loose pass is a safety net for what is not JSON at all: Python reprs
# ({'secret': 'x'}), log-style `secret=x`, and text the structural pass misreads.

_MAX_NESTED_DEPTH = 3
_STRING = re.compile(r'"(?:[^"\\]|\\[\s\S])*(?:"|\\?\Z)')
_HINT = re.compile(r"secret|\\u", re.IGNORECASE)
_KEY_SEPARATOR = re.compile(r"\s*:?\s*")
_BARE_VALUE = re.compile(r"[^,}\]\s]*")
_NAIVE_ESCAPE = re.compile(r"\\([\s\S])")
_LOOSE = re.compile(
    r"""(?P<key>secret[a-z0-9_]*\\?["']?\s*[:=]\s*)
    (?P<value>\\"(?:\\\\\\"|[^"])*?(?:\\"|\Z)
      |"(?:[^"\\]|\\[\s\S])*(?:"|\Z)
      |'(?:[^'\\]|\\[\s\S])*(?:'|\Z)
      |\[[^\]]*(?:\]|\Z)
      |\{[^}]*(?:\}|\Z)
      |[^\s,;}\]"']+)""",
    re.IGNORECASE | re.VERBOSE,
)


def is_secret_key(key: object) -> bool:
    """True for keys naming a secret (`secret`, `secrets`, `proof_secret`, `Secret` ...).

    Over-matching is safe (a value is lost from a log); under-matching leaks funds, so the test is
    "contains 'secret'" on the letters of the key. `witness` and `C` are kept: they do not spend.
    """
    if not isinstance(key, str):
        return False
    return "secret" in "".join(ch for ch in key.lower() if ch.isalnum())


def scrub(obj: Any, known_secrets: Iterable[str] = ()) -> Any:
    """A deep copy of a JSON-like structure with every value under a secret key replaced.

    Other strings go through the text passes, which catch JSON encoded into a string and mask
    `known_secrets` wherever they appear. Tuples and sets come back as lists (JSON has no others).
    """
    return _scrub_obj(obj, _usable_secrets(known_secrets))


def _scrub_obj(obj: Any, secrets: tuple[str, ...]) -> Any:
    if isinstance(obj, Mapping):
        return {
            key: SCRUBBED if is_secret_key(key) else _scrub_obj(value, secrets)
            for key, value in obj.items()
        }
    if isinstance(obj, list | tuple | set | frozenset):
        return [_scrub_obj(item, secrets) for item in obj]
    if isinstance(obj, str):
        if _HINT.search(obj):
            obj = _scrub_loose(_scrub_json_text(obj, depth=0))
        return scrub_tokens(_mask_known(obj, secrets))
    return obj


# A serialized Cashu token (V3 `cashuA` + base64url JSON, V4 `cashuB` + base64url CBOR) holds
# whole proofs, secrets included: it is masked wherever it appears in text.
_CASHU_TOKEN = re.compile(r"cashu[AB][A-Za-z0-9_\-+/=]{8,}")
TOKEN_SCRUBBED = "[scrubbed-token]"  # noqa: S105 - a placeholder, not a secret


def scrub_tokens(text: str) -> str:
    return _CASHU_TOKEN.sub(TOKEN_SCRUBBED, text)


def looks_like_cashu_token(text: str) -> bool:
    return _CASHU_TOKEN.search(text) is not None


def scrub_text(
    raw: str | bytes, known_secrets: Iterable[str] = (), max_chars: int | None = None
) -> str:
    """Scrub a raw message body that may not even be valid JSON; see the passes above.

    Known secrets are masked first, over the whole text, so a cut cannot leave part of one. The text
    is then cut to `max_chars` before the passes: a cut only shortens the value after a secret key
    (an unterminated string or container is scrubbed to the end), so this is safe, and it bounds
    the work on a huge message.
    """
    text = raw.decode("utf-8", errors="replace") if isinstance(raw, bytes) else raw
    secrets = _usable_secrets(known_secrets)
    text = _cut(scrub_tokens(_mask_known(text, secrets)), max_chars)
    text = _scrub_loose(_scrub_json_text(text, depth=0))
    return _cut(_mask_known(text, secrets), max_chars)


def _cut(text: str, max_chars: int | None) -> str:
    return text if max_chars is None else text[:max_chars]


def _usable_secrets(known_secrets: Iterable[str]) -> tuple[str, ...]:
    # Longest first, so a secret that contains another is masked whole.
    return tuple(sorted({s for s in known_secrets if s}, key=len, reverse=True))


def _mask_known(text: str, secrets: tuple[str, ...]) -> str:
    for secret in secrets:
        for form in _encoded_forms(secret):
            text = text.replace(form, SCRUBBED)
    return text


def _encoded_forms(secret: str) -> list[str]:
    # A secret appears in raw JSON as itself or escaped (quotes, backslashes, non-ASCII).
    forms = {secret}
    for _ in range(2):  # JSON once, and once more for a payload encoded into a string
        forms |= {json.dumps(f, ensure_ascii=a)[1:-1] for f in list(forms) for a in (True, False)}
    return sorted(forms, key=len, reverse=True)


def _scrub_loose(text: str) -> str:
    return _LOOSE.sub(_loose_replacement, text)


def _loose_replacement(match: re.Match[str]) -> str:
    # Inside an encoded string the quotes are escaped; keep them so, or the string would end early.
    quote = '\\"' if match.group("value").startswith('\\"') else '"'
    return f"{match.group('key')}{quote}{SCRUBBED}{quote}"


def _scrub_json_text(text: str, depth: int) -> str:
    """The structural pass: walk the string literals; replace what follows a secret-named key."""
    out: list[str] = []
    pos = 0
    while True:
        for match in _STRING.finditer(text, pos):
            literal = match.group()
            if not _HINT.search(literal):
                continue
            start, end, replacement = _replacement(text, match, depth)
            out.append(text[pos:start])
            out.append(replacement)
            pos = end
            break  # restart the scan after the replaced span
        else:
            out.append(text[pos:])
            return "".join(out)


def _replacement(text: str, match: re.Match[str], depth: int) -> tuple[int, int, str]:
    literal = match.group()
    separator = _KEY_SEPARATOR.match(text, match.end())
    assert separator is not None  # the pattern matches the empty string
    value_start = separator.end()
    if is_secret_key(_decode_literal(literal)) and _has_value(text, value_start):
        prefix = text[match.start() : value_start]
        return match.start(), _value_end(text, value_start), f'{prefix}"{SCRUBBED}"'
    return match.start(), match.end(), _scrub_nested(literal, depth)


def _decode_literal(literal: str) -> str:
    """The text of a string literal, tolerating a missing closing quote and broken escapes."""
    terminated = len(literal) > 1 and literal.endswith('"') and not literal.endswith('\\"')
    inner = literal[1:-1] if terminated else literal[1:]
    if (len(inner) - len(inner.rstrip("\\"))) % 2:
        inner = inner[:-1]  # a cut right after a backslash
    try:
        decoded = json.loads(f'"{inner}"')
    except ValueError:
        return _NAIVE_ESCAPE.sub(r"\1", inner)
    return decoded if isinstance(decoded, str) else inner


def _has_value(text: str, pos: int) -> bool:
    return pos < len(text) and text[pos] not in ",}]"


def _value_end(text: str, pos: int) -> int:
    first = text[pos]
    if first == '"':
        match = _STRING.match(text, pos)
        assert match is not None  # accepts an unterminated string up to the end
        return match.end()
    if first in "[{":
        return _container_end(text, pos)
    bare = _BARE_VALUE.match(text, pos)
    assert bare is not None
    return max(bare.end(), pos + 1)


def _container_end(text: str, pos: int) -> int:
    """End of a bracketed value, skipping brackets inside strings; the text's end if unbalanced."""
    depth = 0
    i = pos
    while i < len(text):
        ch = text[i]
        if ch == '"':
            match = _STRING.match(text, i)
            assert match is not None
            i = match.end()
            continue
        if ch in "[{":
            depth += 1
        elif ch in "]}":
            depth -= 1
            if depth == 0:
                return i + 1
        i += 1
    return len(text)


def _scrub_nested(literal: str, depth: int) -> str:
    """A string literal that itself holds JSON with a secret key (a double-encoded payload)."""
    if depth >= _MAX_NESTED_DEPTH:
        return literal
    inner = _decode_literal(literal)
    scrubbed = _scrub_json_text(inner, depth + 1)
    if scrubbed == inner:
        return literal
    return json.dumps(scrubbed, ensure_ascii=False)
