"""No secret comes out, whatever shape it arrives in (review finding 8), as a property.

Hypothesis plants a secret (or a Cashu token holding one) in every shape the review listed and
more (tests/support/hostile.py), and pushes each message through every path that writes text:
decoding (the contract error and its message), the dead-letter record (as the worker builds it,
key included), a log line (our JSON formatter, with the error attached) and the web API's 400
body. The secret's core must be in none of them, in any encoding.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime

from hypothesis import given, settings
from hypothesis import strategies as st

from streams.core.contracts import (
    DeadLetterRecord,
    parse_melt_request,
    parse_token_status,
    to_json_bytes,
)
from streams.core.domain import ErrorKind
from streams.core.errors import ContractError
from streams.core.logs import JsonFormatter
from streams.core.redact import redact_key, redact_raw
from tests.support.hostile import Hostile, secret_message

NPUB = "npub1propertytest"
MINT = "https://mint.example"


def _outputs(message: Hostile, parse: object) -> list[str]:
    texts: list[str] = []
    error = ""
    try:
        parse(message.value)  # type: ignore[operator]
    except ContractError as exc:
        error = exc.message
        texts += [str(exc), exc.message, *exc.problems]
        texts.append(json.dumps({"error": exc.code, "message": exc.message}))  # HTTP 400 body
    record = DeadLetterRecord(
        source_topic="wallet.melt-requests",
        partition=0,
        offset=1,
        key=redact_key(message.key),
        error_kind=ErrorKind.VALIDATION_ERROR,
        error=error,
        raw=redact_raw(message.value),
        received_at=datetime.now(UTC),
    )
    texts.append(to_json_bytes(record).decode())
    line = logging.LogRecord("t", logging.WARNING, "x", 1, "rejected %s", (error,), None)
    line.fields = {"error": record.error, "key": record.key}  # type: ignore[attr-defined]
    texts.append(JsonFormatter().format(line))
    return texts


def _assert_clean(message: Hostile, texts: list[str]) -> None:
    for text in texts:
        for planted in message.planted:
            for form in (planted, json.dumps(planted)[1:-1]):
                assert form not in text, (message.kind, text[:300])


@settings(max_examples=400, deadline=None)
@given(st.data())
def test_no_planted_secret_survives_any_text_path(data: st.DataObject) -> None:
    message = data.draw(secret_message(NPUB, MINT, "req-1"))
    parse = data.draw(st.sampled_from([parse_melt_request, parse_token_status]))
    _assert_clean(message, _outputs(message, parse))


def test_every_shape_is_generated() -> None:
    """The property above is only as good as its shapes: make sure each one is drawn."""
    from tests.support.hostile import SECRET_SHAPES

    seen: set[str] = set()

    @settings(max_examples=300, deadline=None)
    @given(secret_message(NPUB, MINT, "req-1"))
    def collect(message: Hostile) -> None:
        seen.add(message.kind)

    collect()
    assert seen == set(SECRET_SHAPES)
