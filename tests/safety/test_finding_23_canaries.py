"""Finding 23 (low): canary Ys were not validated at config time (and the canary is off by default).

At 7262b21 `PROOFRECON_MINT_CANARIES=http://m.test=not-a-y` and canaries for mints off the
allow-list were accepted: a typo failed every answer closed, or guarded nothing. Canaries are now
curve points of allow-listed mints, and a worker warns about each allowed mint without one.
"""

from __future__ import annotations

import logging

import pytest
from pydantic import ValidationError

from streams.core.cashu import y_from_secret
from streams.core.settings import load_settings
from streams.worker.main import warn_about_canaries
from tests.conftest import clear_proofrecon_env

MINT = "https://mint.example.com"
Y = y_from_secret("a proof known spent at the mint")


@pytest.mark.parametrize(
    ("canaries", "message"),
    [
        (f"{MINT}=not-a-y", "is not a Y"),
        (f"{MINT}=02zz", "is not a Y"),
        (f"{MINT}=02{'0' * 64}", "is not a Y"),  # hex of the right length, not on the curve
        (f"https://unlisted.example={Y}", "not on the allow-list"),
    ],
)
def test_finding_23_a_canary_that_is_not_a_point_of_an_allowed_mint_is_refused(
    canaries: str, message: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    clear_proofrecon_env(monkeypatch)
    monkeypatch.setenv("PROOFRECON_MINT_ALLOWLIST", MINT)
    monkeypatch.setenv("PROOFRECON_MINT_CANARIES", canaries)
    with pytest.raises(ValidationError, match=message):
        load_settings()


def test_finding_23_a_valid_canary_is_kept_and_a_missing_one_is_warned_about(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    clear_proofrecon_env(monkeypatch)
    monkeypatch.setenv("PROOFRECON_MINT_ALLOWLIST", f"{MINT},https://other.example.com")
    monkeypatch.setenv("PROOFRECON_MINT_CANARIES", f"{MINT}/={Y.upper()}")
    settings = load_settings()
    assert settings.mint.canaries == {MINT: Y}
    with caplog.at_level(logging.WARNING, logger="proofrecon.worker"):
        warn_about_canaries(settings)
    warned = [r for r in caplog.records if "no canary" in r.getMessage()]
    assert len(warned) == 1
    assert "other.example.com" in repr(warned[0].__dict__)
