"""Settings: every variable described, `.env.example` in step with the code, parsing rules."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from streams.core.cashu import y_from_secret
from streams.core.domain import Severity
from streams.core.settings import THEMES, CoreSettings, load_settings, render_env_example

REPO = Path(__file__).resolve().parent.parent
CANARY = y_from_secret("a canary proof")


def test_env_example_lists_every_variable() -> None:
    committed = (REPO / ".env.example").read_text()
    assert committed == render_env_example(), (
        ".env.example is stale: run `.venv/bin/python -m streams.core.settings > .env.example`"
    )


def test_every_field_is_described() -> None:
    for cls in [CoreSettings, *THEMES.values()]:
        for name, field in cls.model_fields.items():
            assert field.description, f"{cls.__name__}.{name} has no description"


def test_env_example_loads_as_env_file(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = load_settings(env_file=REPO / ".env.example")
    assert settings.kafka.bootstrap_servers == "127.0.0.1:9092"
    assert settings.mint.allowlist == ["http://127.0.0.1:3338"]
    assert settings.web.port == 6066
    assert settings.topics.partitions == 6


def test_defaults_follow_design(monkeypatch: pytest.MonkeyPatch) -> None:
    for key in [k for k in __import__("os").environ if k.startswith("PROOFRECON_")]:
        monkeypatch.delenv(key)
    s = load_settings()
    assert s.topics.melt_requests == "wallet.melt-requests"
    assert s.topics.preflight_results == "recon.preflight-results"
    assert s.policy.blocking_severities == {Severity.HIGH}
    assert s.policy.auto_correct_severities == {Severity.MEDIUM}
    assert s.clickhouse_url.startswith("chdb://")
    assert s.mint.requests_per_minute == 40


def test_environment_parsing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PROOFRECON_MINT_ALLOWLIST", "https://mint.a/ , https://mint.b")
    monkeypatch.setenv("PROOFRECON_MINT_CANARIES", f"https://mint.a={CANARY.upper()}")
    monkeypatch.setenv("PROOFRECON_POLICY_BLOCKING_SEVERITIES", "HIGH,MEDIUM")
    monkeypatch.setenv("PROOFRECON_POLICY_AUTO_CORRECT_SEVERITIES", "")
    monkeypatch.setenv("PROOFRECON_CLICKHOUSE_URL", "http://u:p@ch:8123/proofrecon")
    s = load_settings()
    assert s.mint.allowlist == ["https://mint.a", "https://mint.b"]
    assert s.mint.canaries == {"https://mint.a": CANARY}
    assert s.policy.blocking_severities == {Severity.HIGH, Severity.MEDIUM}
    assert s.clickhouse_url == "http://u:p@ch:8123/proofrecon"


def test_invalid_values_are_rejected(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PROOFRECON_KAFKA_SECURITY_PROTOCOL", "SASL_SSL")
    with pytest.raises(ValidationError, match="SASL"):
        load_settings()
    monkeypatch.delenv("PROOFRECON_KAFKA_SECURITY_PROTOCOL")
    monkeypatch.setenv("PROOFRECON_POLICY_BLOCKING_SEVERITIES", "CRITICAL")
    with pytest.raises(ValidationError):
        load_settings()


def test_mint_request_headers_and_limiter_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    from streams.core.settings import to_env

    for key in [k for k in __import__("os").environ if k.startswith("PROOFRECON_")]:
        monkeypatch.delenv(key)
    s = load_settings()
    assert (s.mint.limiter_model, s.mint.limiter_limit, s.mint.limiter_window_s) == (
        "elastic",
        60,
        60.0,
    )
    assert s.mint.request_headers == {}
    monkeypatch.setenv("PROOFRECON_MINT_ALLOWLIST", "https://mint.a,https://mint.b")
    monkeypatch.setenv(
        "PROOFRECON_MINT_REQUEST_HEADERS", '{"https://mint.a/": {"X-Forwarded-For": "10.0.0.1"}}'
    )
    s = load_settings()
    assert s.mint.request_headers == {"https://mint.a": {"X-Forwarded-For": "10.0.0.1"}}
    # A worker started from to_env() sees the same headers.
    for key, value in to_env(s).items():
        monkeypatch.setenv(key, value)
    assert load_settings().mint.request_headers == s.mint.request_headers

    for bad in [
        '{"https://mint.c": {"X-A": "1"}}',  # not on the allow-list
        '{"https://mint.a": {"Host": "evil"}}',  # ours to set
        '{"https://mint.a": {"X-A": "1\\r\\nX-B: 2"}}',  # header injection
        '{"https://mint.a": {"X A": "1"}}',  # not a header name
        "X-A=1",  # not JSON
    ]:
        monkeypatch.setenv("PROOFRECON_MINT_REQUEST_HEADERS", bad)
        with pytest.raises(ValidationError):
            load_settings()
    monkeypatch.delenv("PROOFRECON_MINT_REQUEST_HEADERS")
    monkeypatch.setenv("PROOFRECON_MINT_LIMITER_MODEL", "sliding")
    with pytest.raises(ValidationError):
        load_settings()
    monkeypatch.setenv("PROOFRECON_MINT_LIMITER_MODEL", "fixed")
    monkeypatch.setenv("PROOFRECON_MINT_LIMITER_MARGIN", "1")
    with pytest.raises(ValidationError):
        load_settings()
