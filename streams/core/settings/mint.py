"""Talking to mints: the allow-list, batching, pacing, the limiter model, canaries."""

from __future__ import annotations

import json
from typing import Annotated, Any

from pydantic import Field, field_validator, model_validator
from pydantic_settings import NoDecode, SettingsConfigDict

from streams.core.cashu import is_valid_y
from streams.core.mint_url import is_insecure
from streams.core.settings._base import (
    HEADER_NAME,
    RESERVED_HEADERS,
    LimiterModel,
    Themed,
    normalise_setting_url,
    split_csv,
)


class MintSettings(Themed):
    model_config = SettingsConfigDict(env_prefix="PROOFRECON_MINT_")

    allowlist: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: ["http://127.0.0.1:3338"],
        description="Comma-separated mint URLs the service may call; any other URL is refused.",
    )
    allow_insecure_http: bool = Field(
        False,
        description="Allow http:// mint URLs of other machines on the allow-list (loopback "
        "http, like the local stack's mint, is always allowed).",
    )
    max_batch_size: int = Field(
        1000, ge=1, description="Most Ys per checkstate request (min with the mint's own limit)."
    )
    requests_per_minute: float = Field(
        40.0,
        gt=0,
        description="Token bucket smoothing the requests to each mint (the mint's own limit is "
        "kept by the limiter_* settings).",
    )
    burst: int = Field(5, ge=1, description="Requests a mint may receive back to back.")
    gather_window_ms: float = Field(
        3.0, ge=0, description="How long concurrent checks are gathered into one request (ms)."
    )
    request_timeout_s: float = Field(5.0, gt=0, description="HTTP timeout per request (seconds).")
    rate_limit_silence_s: float = Field(
        60.0, ge=0, description="Silence after a 429; every 429 restarts it (seconds)."
    )
    max_retries: int = Field(3, ge=0, description="Retries on transport errors, timeouts and 5xx.")
    retry_backoff_s: float = Field(0.1, gt=0, description="Base of the jittered backoff (seconds).")
    breaker_failures: int = Field(
        5, ge=1, description="Consecutive failures that open a mint's circuit."
    )
    breaker_cooldown_s: float = Field(
        30.0, gt=0, description="How long an open circuit fails fast (seconds)."
    )
    spent_cache_size: int = Field(
        1_000_000, ge=0, description="SPENT Ys remembered per mint (SPENT is final)."
    )
    canaries: Annotated[dict[str, str], NoDecode] = Field(
        default_factory=dict,
        description="Comma-separated mint_url=Y pairs: a Y known SPENT at that mint, sent along "
        "with batches to prove the mint and our hashing agree.",
    )
    default_deadline_ms: int = Field(
        2000, gt=0, description="Deadline for a check when the caller gives none (ms)."
    )
    max_in_flight: int = Field(
        4,
        ge=1,
        description="Most checkstate requests out to one mint at once (more callers "
        "wait and join bigger batches).",
    )
    last_seen_size: int = Field(
        100_000, ge=0, description="Ys per mint whose last seen state is remembered for display."
    )
    limiter_model: LimiterModel = Field(
        "elastic",
        description="How the mint's rate limiter counts our requests: elastic (Nutshell: every "
        "request, even a refused one, extends the window, so the count resets only after "
        "limiter_window_s with no request at all), fixed (fixed or sliding windows, which forget "
        "requests older than the window) or none (no limiter for us, e.g. a local mint exempting "
        "127.0.0.1: only the token bucket paces).",
    )
    limiter_limit: int = Field(
        60,
        ge=1,
        description="Requests the mint's limiter allows per window and client IP (Nutshell: "
        "MINT_GLOBAL_RATE_LIMIT_PER_MINUTE). Workers sharing one egress IP share it: give each "
        "its part.",
    )
    limiter_window_s: float = Field(
        60.0, gt=0, description="The mint limiter's window (seconds; Nutshell's is one minute)."
    )
    limiter_margin: float = Field(
        0.1,
        ge=0,
        lt=1,
        description="Share of limiter_limit left to other clients behind our IP (Nutshell counts "
        "per endpoint: only their checkstates matter; 0 if the IP is ours alone). At least one "
        "request per window is always usable.",
    )
    limiter_slack_s: float = Field(
        1.0,
        ge=0,
        description="How much later than we think the mint may count a request: added to a "
        "sliding window, and to the quiet after a request we gave up on (seconds).",
    )
    limiter_widen_after: float = Field(
        0.5,
        ge=0,
        le=1,
        description="Once this share of the window's request budget is used, batches wait for "
        "more callers (up to limiter_max_gather_ms), so the rest of the budget lasts longer.",
    )
    limiter_max_gather_ms: float = Field(
        5000.0,
        ge=0,
        description="Widest gathering window when the limiter's budget is what limits (see "
        "limiter_model): a batch then goes when full, when its first caller has waited this "
        "long, or in time for its earliest caller's deadline, whichever comes first (ms). The "
        "deadlines bound it at the defaults (2 s).",
    )
    request_headers: Annotated[dict[str, dict[str, str]], NoDecode] = Field(
        default_factory=dict,
        repr=False,  # a proxy's Authorization header is a secret
        description='Fixed HTTP headers per mint, as JSON: {"mint_url": {"Header": "value"}} '
        "(e.g. for a proxy in front of the mint). Only that mint receives them.",
    )

    @field_validator("allowlist", mode="before")
    @classmethod
    def _parse_allowlist(cls, value: Any) -> Any:
        parsed = split_csv(value)
        return [normalise_setting_url(u) for u in parsed] if isinstance(parsed, list) else parsed

    @field_validator("canaries", mode="before")
    @classmethod
    def _parse_canaries(cls, value: Any) -> Any:
        if not isinstance(value, str):
            return value
        pairs: dict[str, str] = {}
        for item in split_csv(value):
            url, sep, y = item.rpartition("=")
            if not sep or not url:
                raise ValueError(f"canary {item!r} is not mint_url=Y")
            pairs[normalise_setting_url(url)] = y.strip().lower()
        return pairs

    @field_validator("request_headers", mode="before")
    @classmethod
    def _parse_request_headers(cls, value: Any) -> Any:
        if isinstance(value, str):
            value = json.loads(value) if value.strip() else {}
        if not isinstance(value, dict):
            return value
        return {normalise_setting_url(str(url)): headers for url, headers in value.items()}

    @field_validator("request_headers")
    @classmethod
    def _check_request_headers(cls, value: dict[str, dict[str, str]]) -> dict[str, dict[str, str]]:
        for headers in value.values():
            for name, text in headers.items():
                if not HEADER_NAME.fullmatch(name):
                    raise ValueError(f"{name!r} is not an HTTP header name")
                if name.lower() in RESERVED_HEADERS:
                    raise ValueError(f"header {name!r} is set by proofrecon itself")
                if any(c in text for c in "\r\n\0"):
                    raise ValueError(f"the value of header {name!r} has a line break or NUL")
        return value

    @model_validator(mode="after")
    def _canaries_are_points_of_allowed_mints(self) -> MintSettings:
        # A typo here would fail every answer closed, or guard nothing (review finding 23).
        for url, y in self.canaries.items():
            if url not in self.allowlist:
                raise ValueError(f"canary for {url!r}, which is not on the allow-list")
            if not is_valid_y(y):
                raise ValueError(f"the canary of {url!r} is not a Y (a compressed curve point)")
        return self

    @model_validator(mode="after")
    def _no_plain_http(self) -> MintSettings:
        insecure = sorted(url for url in self.allowlist if is_insecure(url))
        if insecure and not self.allow_insecure_http:
            raise ValueError(
                f"plain http:// to another machine lets anyone on the path answer UNSPENT for "
                f"everything: {insecure}; use https, or set "
                "PROOFRECON_MINT_ALLOW_INSECURE_HTTP=true for a trusted network"
            )
        return self

    @model_validator(mode="after")
    def _headers_for_allowed_mints(self) -> MintSettings:
        allowed = set(self.allowlist)
        unknown = sorted(url for url in self.request_headers if url not in allowed)
        if unknown:
            raise ValueError(f"request_headers for mints not on the allow-list: {unknown}")
        return self
