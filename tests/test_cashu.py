"""Proof identity (NUT-00) and the secret scrubber."""

from __future__ import annotations

import hashlib
import json

import pytest
from hypothesis import assume, example, given, settings
from hypothesis import strategies as st

from streams.core.cashu import (
    SCRUBBED,
    hash_to_curve,
    is_secret_key,
    is_valid_y,
    scrub,
    scrub_text,
    validate_y,
    y_from_secret,
    y_prefix,
)

NUT00_VECTORS = [
    (bytes(32), "024cce997d3b518f739663b757deaec95bcd9473c30a14ac2fd04023a739d1a725"),
    (bytes(31) + b"\x01", "022e7158e11c9506f1aa4248bf531298daa7febd6194f003edcd9b93ade6253acf"),
    (bytes(31) + b"\x02", "026cdbe15362df59cd1dd3c9c11de8aedac2106eca69236ecd9fbe117af897be4f"),
]
# x = 0 is not on secp256k1 (0^3 + 7 = 7 has no square root mod p).
OFF_CURVE_Y = "02" + "00" * 32


@pytest.mark.parametrize(("message", "expected"), NUT00_VECTORS)
def test_hash_to_curve_matches_nut00_vectors(message: bytes, expected: str) -> None:
    assert hash_to_curve(message).hex() == expected


def test_y_hashes_the_secret_as_utf8_not_hex() -> None:
    secret = "00" * 32  # looks like hex; must still be hashed as its 64 ASCII characters
    assert y_from_secret(secret) == hash_to_curve(secret.encode("utf-8")).hex()
    assert y_from_secret(secret) != NUT00_VECTORS[0][1]


def test_y_of_a_non_ascii_secret_uses_its_utf8_bytes() -> None:
    assert y_from_secret("süß") == hash_to_curve("süß".encode()).hex()


def test_y_is_66_lowercase_hex_and_on_the_curve() -> None:
    y = y_from_secret("a proof secret")
    assert len(y) == 66
    assert y == y.lower()
    assert is_valid_y(y)


def test_hash_to_curve_tries_counters_until_a_point() -> None:
    # Find a message whose counter-0 candidate is not an x-coordinate: the loop must go on.
    for i in range(200):
        message = i.to_bytes(4, "big")
        digest = hashlib.sha256(b"Secp256k1_HashToCurve_Cashu_" + message).digest()
        first = hashlib.sha256(digest + (0).to_bytes(4, "little")).digest()
        if not is_valid_y("02" + first.hex()):
            assert hash_to_curve(message)[1:] != first
            assert is_valid_y(hash_to_curve(message).hex())
            return
    pytest.fail("no message needing a second counter found")


@pytest.mark.parametrize(
    "bad",
    [
        OFF_CURVE_Y,
        "04" + "11" * 32,
        "02" + "11" * 31,
        "02" + "zz" * 32,
        "",
        None,
        42,
        NUT00_VECTORS[0][1] + "00",
        "02" + "ff" * 32,  # x >= p
    ],
)
def test_invalid_ys_are_rejected(bad: object) -> None:
    assert not is_valid_y(bad)
    with pytest.raises(ValueError):
        validate_y(bad)


def test_validate_y_normalises_case() -> None:
    y = NUT00_VECTORS[1][1]
    assert validate_y(y.upper()) == y


def test_y_prefix_is_short() -> None:
    assert y_prefix(NUT00_VECTORS[0][1]) == "024cce997d3b"


# --- scrubbing ---------------------------------------------------------------------------------


@pytest.mark.parametrize("key", ["secret", "secrets", "Secret", "proof_secret", "SECRET"])
def test_secret_keys(key: str) -> None:
    assert is_secret_key(key)


@pytest.mark.parametrize("key", ["witness", "C", "Y", "amount", "id"])
def test_non_secret_keys(key: str) -> None:
    assert not is_secret_key(key)


def test_scrub_replaces_values_under_secret_keys_deeply_and_copies() -> None:
    proofs = [{"secret": "s1", "C": "02ab", "witness": "w"}]
    data = {
        "proofs": proofs,
        "secrets": ["s2", "s3"],
        "nested": {"inner": {"Secret": {"any": "shape"}}},
        "n": 3,
    }
    scrubbed = scrub(data)
    assert scrubbed == {
        "proofs": [{"secret": SCRUBBED, "C": "02ab", "witness": "w"}],
        "secrets": SCRUBBED,
        "nested": {"inner": {"Secret": SCRUBBED}},
        "n": 3,
    }
    assert proofs[0]["secret"] == "s1"  # the input is untouched


def test_scrub_catches_json_encoded_into_a_string_and_known_secrets() -> None:
    data = {"payload": json.dumps({"secret": "inner-value"}), "note": "leaked known-value here"}
    out = json.dumps(scrub(data, known_secrets=["known-value"]))
    assert "inner-value" not in out
    assert "known-value" not in out


@pytest.mark.parametrize(
    ("raw", "secret"),
    [
        ('{"secret": "abc\\"def\\\\ghi", "amount": 1}', 'abc\\"def'),
        ('{"secret"  :\n  "spaced-out-secret"}', "spaced-out-secret"),
        ('{"proofs": [{"secret": "cut-in-the-midd', "cut-in-the-midd"),
        ("{'secret': 'python-repr-secret'}", "python-repr-secret"),
        ('{"payload": "{\\"secret\\": \\"double-encoded\\"}"}', "double-encoded"),
        ('{"secr\\u0065t": "escaped-key-secret"}', "escaped-key-secret"),
        ("secret=log-style-secret other=1", "log-style-secret"),
        ('{"secrets": ["first-secret", "second-secret"]}', "second-secret"),
        ('{"secret": {"nested": "object-secret"}}', "object-secret"),
        ('garbage before {"secret": "after-garbage"} and after', "after-garbage"),
        (b'\xff\xfe{"secret": "after-bad-bytes"}', "after-bad-bytes"),
    ],
)
def test_scrub_text_handles_broken_and_odd_input(raw: str | bytes, secret: str) -> None:
    out = scrub_text(raw)
    assert secret not in out
    assert SCRUBBED in out


def test_scrub_text_keeps_other_fields() -> None:
    out = scrub_text('{"secret": "x", "C": "02ab", "witness": "w", "amount": 8}')
    assert json.loads(out) == {"secret": SCRUBBED, "C": "02ab", "witness": "w", "amount": 8}


def test_scrub_text_masks_known_secrets_before_cutting() -> None:
    secret = "k" * 40
    raw = "x" * 90 + secret  # the cut at 100 would leave a prefix of the secret
    out = scrub_text(raw, known_secrets=[secret], max_chars=100)
    assert "kkkkk" not in out
    assert len(out) <= 100


def test_scrub_text_of_a_huge_message_is_fast_and_bounded() -> None:
    raw = json.dumps({"proofs": [{"secret": "s" * 64, "amount": 1}] * 20_000})
    out = scrub_text(raw, max_chars=4096)
    assert len(out) <= 4096
    assert "s" * 64 not in out


# --- properties --------------------------------------------------------------------------------

_secret_chars = st.characters(codec="utf-8", exclude_categories=["Cs"])
secrets_st = st.text(_secret_chars, min_size=12, max_size=80)
filler_st = st.dictionaries(
    st.sampled_from(["amount", "id", "C", "witness", "Y", "note"]),
    st.one_of(st.integers(), st.text(st.characters(codec="ascii"), max_size=10)),
    max_size=3,
)


@st.composite
def documents(draw: st.DrawFn) -> tuple[object, str]:
    """A JSON document with a secret at a random depth, under a random secret-named key."""
    secret = draw(secrets_st)
    key = draw(st.sampled_from(["secret", "Secret", "proof_secret", "secrets"]))
    leaf: dict[str, object] = {**draw(filler_st), key: secret if key != "secrets" else [secret]}
    doc: object = leaf
    for wrapper in draw(st.lists(st.sampled_from(["list", "proofs", "inner"]), max_size=3)):
        doc = [doc] if wrapper == "list" else {wrapper: doc, **draw(filler_st)}
    return doc, secret


def _forms(secret: str) -> set[str]:
    return {secret, json.dumps(secret)[1:-1], json.dumps(secret, ensure_ascii=False)[1:-1]}


def _absent(secret: str, text: str) -> bool:
    return not any(form in text for form in _forms(secret))


def _without(obj: object, secret: str) -> object:
    """The document with the secret's own value taken out (structurally, not by text)."""
    if isinstance(obj, dict):
        return {k: _without(v, secret) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_without(v, secret) for v in obj]
    return "" if obj == secret else obj


@settings(max_examples=300)
@given(documents(), st.integers(0, 4), st.booleans())
@example(
    ({"proofs": {"secret": "000000000000"}, "amount": 125_000_000_000_000}, "0" * 12), 0, False
)
def test_secrets_never_survive_scrub_text_of_json(
    doc_secret: tuple[object, str], indent: int, ascii_only: bool
) -> None:
    doc, secret = doc_secret
    raw = json.dumps(doc, indent=indent or None, ensure_ascii=ascii_only)
    # The filler may contain the secret's text by chance (a number's digits): not a leak.
    rest = json.dumps(_without(doc, secret), indent=indent or None, ensure_ascii=ascii_only)
    assume(_absent(secret, rest))
    assert _absent(secret, scrub_text(raw))
    assert _absent(secret, json.dumps(scrub(doc)))


@settings(max_examples=300)
@given(documents(), st.data())
def test_secrets_never_survive_scrub_text_of_broken_json(
    doc_secret: tuple[object, str], data: st.DataObject
) -> None:
    doc, secret = doc_secret
    ascii_only = data.draw(st.booleans())
    raw = json.dumps(doc, ensure_ascii=ascii_only)
    assume(_absent(secret, json.dumps(_without(doc, secret), ensure_ascii=ascii_only)))
    other = _non_secret_text(raw, secret)  # what the input holds besides the secret
    damage = data.draw(st.sampled_from(["truncate", "drop_braces", "junk", "python_quotes"]))
    if damage == "truncate":
        raw = raw[: data.draw(st.integers(0, len(raw)))]
    elif damage == "drop_braces":
        raw = raw.replace("}", "").replace("]", "")
    elif damage == "junk":
        before, after = data.draw(st.text(max_size=20)), data.draw(st.text(max_size=20))
        raw, other = before + raw + after, before + other + after
    else:
        raw = raw.replace('"', "'")
    out = scrub_text(raw)
    # A cut can leave a prefix of the secret: no part of it longer than 3 characters may survive,
    # unless the rest of the input holds that part by chance.
    for length in range(4, len(secret) + 1):
        prefix = secret[:length]
        assert _absent(prefix, out) or not _absent(prefix, other)


def _non_secret_text(raw: str, secret: str) -> str:
    for form in sorted(_forms(secret), key=len, reverse=True):
        raw = raw.replace(form, "")
    return raw


@settings(max_examples=200)
@given(secrets_st, st.text(max_size=200), st.text(max_size=200), st.integers(1, 400))
def test_known_secrets_never_survive_anywhere_in_text(
    secret: str, before: str, after: str, max_chars: int
) -> None:
    out = scrub_text(before + secret + after, known_secrets=[secret], max_chars=max_chars)
    assert secret not in out
    assert len(out) <= max_chars
