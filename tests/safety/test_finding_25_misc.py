"""Finding 25 (low): miscellaneous.

- Passwords were plain `str`: any `repr(settings)` printed them. They are `SecretStr` now.
- `http://` mint URLs were allowed for any host: a MITM answering UNSPENT clears melts. Plain http
  is now refused for anything but loopback unless explicitly allowed.
- README claimed a replayed request is answered "with the same verdict"; a replay recomputes from
  fresh mint truth (after the wallet melted, the replay answers BLOCKED), so the claim is false.
- Secrets on the input topics (7-day retention) are a producer-side recommendation (Y-only
  producers): nothing for the worker to enforce, so no test here.
"""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
from pydantic import ValidationError

from streams.core.kafka import client_kwargs
from streams.core.settings import load_settings
from tests.conftest import clear_proofrecon_env

REPO = Path(__file__).resolve().parents[2]


def _secrets() -> dict[str, str]:
    return {name: f"{name}-{uuid.uuid4().hex}" for name in ("sasl", "ch_url", "ch", "web", "hmac")}


def test_finding_25_settings_never_print_their_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    clear_proofrecon_env(monkeypatch)
    secret = _secrets()
    settings = load_settings(
        kafka={
            "security_protocol": "SASL_SSL",
            "sasl_mechanism": "SCRAM-SHA-512",
            "sasl_username": "proofrecon",
            "sasl_password": secret["sasl"],
        },
        clickhouse={
            "url": f"https://analyst:{secret['ch_url']}@ch.example.com:8443/db",
            "password": secret["ch"],
        },
        web={"auth_token": secret["web"]},
        topics={"findings_signing_key": secret["hmac"]},
    )
    for text in (repr(settings), str(settings), settings.model_dump_json(), repr(settings.kafka)):
        assert not [name for name, value in secret.items() if value in text], text[:300]
    # Still there for the code that needs them.
    assert client_kwargs(settings.kafka)["sasl_plain_password"] == secret["sasl"]
    assert secret["ch_url"] in settings.clickhouse_url


def test_finding_25_a_refused_kafka_setting_does_not_print_its_password(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    clear_proofrecon_env(monkeypatch)
    password = _secrets()["sasl"]
    with pytest.raises(ValidationError) as refused:
        load_settings(
            kafka={
                "security_protocol": "SSL",
                "sasl_mechanism": "SCRAM-SHA-512",
                "sasl_username": "proofrecon",
                "sasl_password": password,
            }
        )
    text = str(refused.value)
    assert "SASL settings are set" in text
    # Not even a part of it (pydantic shortens a long input to its two ends).
    assert not [
        password[i : i + 8] for i in range(len(password) - 7) if password[i : i + 8] in text
    ]


@pytest.mark.parametrize(
    ("url", "allowed"),
    [
        ("http://mint.example.com", False),
        ("http://10.0.0.7:3338", False),
        ("http://127.0.0.1:3338", True),
        ("http://localhost:3338", True),
        ("http://[::1]:3338", True),
        ("https://mint.example.com", True),
    ],
)
def test_finding_25_plain_http_to_another_machine_is_refused_unless_allowed(
    url: str, allowed: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    clear_proofrecon_env(monkeypatch)
    if allowed:
        assert load_settings(mint={"allowlist": [url]}).mint.allowlist == [url]
    else:
        with pytest.raises(ValidationError, match="plain http://"):
            load_settings(mint={"allowlist": [url]})
    # An operator may still allow it explicitly, for a trusted network.
    explicit = load_settings(mint={"allowlist": [url], "allow_insecure_http": True})
    assert explicit.mint.allowlist == [url]


def test_finding_25_readme_no_longer_promises_the_same_verdict_on_replay() -> None:
    readme = " ".join((REPO / "README.md").read_text().split())
    assert "answered twice, with the same verdict" not in readme
