"""Configuration, by theme. Every field is read from a `PROOFRECON_*` environment variable.

Settings are built by `load_settings()`, never at import, so tests and tools can build their own.
`.env.example` lists every variable; `tests/test_settings.py` fails when it drifts from this module.
"""

from __future__ import annotations

import ipaddress
import itertools
import json
import re
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from streams.cashu import is_valid_y
from streams.domain import AlertKind, Severity
from streams.errors import ConfigError
from streams.mint_url import MintUrlError, is_insecure, normalise_mint_url

LimiterModel = Literal["elastic", "fixed", "none"]

# An HTTP header name is an RFC 9110 token; these few are ours to set (or the HTTP client's).
_HEADER_NAME = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
_TOPIC_NAME = re.compile(r"[A-Za-z0-9._-]{1,249}")


def _is_loopback_host(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


_RESERVED_HEADERS = frozenset(
    {"host", "content-length", "content-type", "transfer-encoding", "connection", "te", "upgrade"}
)


def _split_csv(value: Any) -> Any:
    if isinstance(value, str):
        return [item.strip() for item in value.split(",") if item.strip()]
    return value


def _normalise_mint_url(url: str) -> str:
    try:
        return normalise_mint_url(url)
    except MintUrlError as exc:
        raise ValueError(f"{str(url)[:200]!r}: {exc}") from None


class _Themed(BaseSettings):
    # hide_input_in_errors: a refused setting must not print the others (a password among them).
    model_config = SettingsConfigDict(
        extra="ignore", frozen=True, populate_by_name=True, hide_input_in_errors=True
    )


class KafkaSettings(_Themed):
    model_config = SettingsConfigDict(env_prefix="PROOFRECON_KAFKA_")

    bootstrap_servers: str = Field(
        "127.0.0.1:9092", description="Comma-separated Kafka bootstrap servers (host:port)."
    )
    security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = Field(
        "PLAINTEXT", description="Kafka security protocol."
    )
    sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] | None = Field(
        None, description="SASL mechanism when the protocol is SASL_*."
    )
    sasl_username: str | None = Field(None, description="SASL username.")
    sasl_password: SecretStr | None = Field(None, description="SASL password.")
    ssl_cafile: Path | None = Field(None, description="CA bundle to verify the brokers (SSL).")
    ssl_certfile: Path | None = Field(None, description="Client certificate for mutual TLS.")
    ssl_keyfile: Path | None = Field(None, description="Client private key for mutual TLS.")
    app_id: str = Field(
        "proofrecon", description="Faust application id: the consumer group and table prefix."
    )
    commit_interval_s: float = Field(
        1.0, gt=0, description="How often consumed offsets are committed (seconds)."
    )
    send_timeout_s: float = Field(
        15.0,
        gt=0,
        description="Longest one produce request may take, metadata of a missing topic "
        "included (seconds); a send that fails is retried a few times, then the worker stops.",
    )
    instance_id: str | None = Field(
        None,
        description="Static group membership (KIP-345): a stable id per worker (e.g. its host "
        "name). A worker restarted within session_timeout_s takes its partitions back at once, "
        "with no rebalance; unset, it waits for the dead member's session to expire.",
    )
    standby_replicas: int = Field(
        0,
        ge=0,
        description="Standby copies of each table partition on other workers, so a partition "
        "that moves is ready sooner (useful with several workers).",
    )
    session_timeout_s: float = Field(
        10.0,
        gt=0,
        description="Consumer group session timeout: how soon a crashed worker's partitions "
        "move to a live one (seconds).",
    )

    @model_validator(mode="after")
    def _consistent_security(self) -> KafkaSettings:
        """Refuse settings that would connect less securely than they read (review finding 10:
        SSL plus a stray SASL mechanism used to run SASL_PLAINTEXT, a password in clear)."""
        sasl = self.security_protocol.startswith("SASL")
        tls = self.security_protocol.endswith("SSL")
        if sasl and not (self.sasl_mechanism and self.sasl_username and self.sasl_password):
            raise ValueError("SASL protocols need sasl_mechanism, sasl_username, sasl_password")
        if not sasl and (self.sasl_mechanism or self.sasl_username or self.sasl_password):
            raise ValueError(
                f"SASL settings are set but security_protocol is {self.security_protocol}: "
                "use SASL_SSL (or SASL_PLAINTEXT), or unset them"
            )
        if self.sasl_mechanism == "PLAIN" and not tls:
            raise ValueError("SASL PLAIN sends the password in clear: use SASL_SSL")
        if not tls and (self.ssl_cafile or self.ssl_certfile or self.ssl_keyfile):
            raise ValueError(
                f"TLS files are set but security_protocol is {self.security_protocol}: "
                "use SSL or SASL_SSL, or unset them"
            )
        return self


class TopicSettings(_Themed):
    model_config = SettingsConfigDict(env_prefix="PROOFRECON_TOPIC_")

    token_status: str = Field("wallet.token-status", description="Wallet token-status changes.")
    melt_requests: str = Field("wallet.melt-requests", description="Melt preflight requests.")
    preflight_results: str = Field(
        "recon.preflight-results", description="Preflight verdicts, keyed by request_id."
    )
    discrepancies: str = Field("recon.discrepancies", description="Classified discrepancy events.")
    corrections: str = Field("wallet.corrections", description="Status fixes for the wallet DB.")
    proof_checks: str = Field(
        "recon.proof-checks", description="Counts of proofs checked (analytics denominator)."
    )
    alerts: str = Field("recon.alerts", description="Alerts for on-call.")
    dead_letter: str = Field("recon.dead-letter", description="Input that could not be processed.")
    findings: str = Field(
        "recon.findings",
        description="Internal: mint states seen by the sweep and the web API, keyed by npub, "
        "so the npub's partition owner classifies them against its tables.",
    )
    alerts_input: str = Field(
        "recon.alerts-input",
        description="Internal: discrepancies, proof checks and mint health re-keyed by mint_url, "
        "so one partition owner keeps each mint's alerting state.",
    )
    findings_signing_key: SecretStr | None = Field(
        None,
        description="Shared by every worker of a group: the HMAC key of recon.findings, so a "
        "finding no worker wrote is refused. Unset: a random key per process (fine for one "
        "worker; with several, findings crossing a rebalance are refused and re-swept).",
    )

    @classmethod
    def topic_fields(cls) -> tuple[str, ...]:
        """The fields that name a topic (the str ones), in declaration order."""
        return tuple(name for name, f in cls.model_fields.items() if f.annotation is str)

    partitions: int = Field(
        6, ge=1, description="Partition count of every wallet-facing topic (must be equal)."
    )
    replication_factor: int = Field(
        1,
        ge=1,
        description="Replication factor of the topics proofrecon creates (its contract topics "
        "and Faust's changelogs); 3 on a replicated cluster.",
    )
    min_insync_replicas: int | None = Field(
        None,
        ge=1,
        description="min.insync.replicas of the topics proofrecon creates (with acks=all, a "
        "write needs this many replicas). Unset: the broker's default.",
    )
    retention_ms: int = Field(
        7 * 24 * 3600 * 1000, gt=0, description="Retention of the non-compacted topics (ms)."
    )


class MintSettings(_Themed):
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
        1500.0,
        ge=0,
        description="Widest gathering window when the budget runs low: a batch then goes when "
        "full, when its first caller has waited this long, or in time for its earliest "
        "caller's deadline, whichever comes first (ms).",
    )
    request_headers: Annotated[dict[str, dict[str, str]], NoDecode] = Field(
        default_factory=dict,
        description='Fixed HTTP headers per mint, as JSON: {"mint_url": {"Header": "value"}} '
        "(e.g. for a proxy in front of the mint). Only that mint receives them.",
    )

    @field_validator("allowlist", mode="before")
    @classmethod
    def _parse_allowlist(cls, value: Any) -> Any:
        parsed = _split_csv(value)
        return [_normalise_mint_url(u) for u in parsed] if isinstance(parsed, list) else parsed

    @field_validator("canaries", mode="before")
    @classmethod
    def _parse_canaries(cls, value: Any) -> Any:
        if not isinstance(value, str):
            return value
        pairs: dict[str, str] = {}
        for item in _split_csv(value):
            url, sep, y = item.rpartition("=")
            if not sep or not url:
                raise ValueError(f"canary {item!r} is not mint_url=Y")
            pairs[_normalise_mint_url(url)] = y.strip().lower()
        return pairs

    @field_validator("request_headers", mode="before")
    @classmethod
    def _parse_request_headers(cls, value: Any) -> Any:
        if isinstance(value, str):
            value = json.loads(value) if value.strip() else {}
        if not isinstance(value, dict):
            return value
        return {_normalise_mint_url(str(url)): headers for url, headers in value.items()}

    @field_validator("request_headers")
    @classmethod
    def _check_request_headers(cls, value: dict[str, dict[str, str]]) -> dict[str, dict[str, str]]:
        for headers in value.values():
            for name, text in headers.items():
                if not _HEADER_NAME.fullmatch(name):
                    raise ValueError(f"{name!r} is not an HTTP header name")
                if name.lower() in _RESERVED_HEADERS:
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


_SEVERITY_ORDER = (Severity.LOW, Severity.MEDIUM, Severity.HIGH)


def check_policy_sets(blocking: frozenset[Severity], auto_correct: frozenset[Severity]) -> None:
    """Refuse a policy that could clear what it means to block.

    Blocking severities must hold HIGH and be upward-closed (blocking LOW blocks MEDIUM and HIGH
    too): `BLOCKING_SEVERITIES=LOW`, meant as "block LOW too", must never unblock HIGH. A severity
    cannot be both blocked and corrected-then-cleared.
    """
    if Severity.HIGH not in blocking:
        raise ValueError("blocking severities must contain HIGH")
    for lower, higher in itertools.pairwise(_SEVERITY_ORDER):
        if lower in blocking and higher not in blocking:
            raise ValueError(f"blocking severities must be upward-closed: {lower} without {higher}")
    overlap = blocking & auto_correct
    if overlap:
        names = ",".join(sorted(overlap))
        raise ValueError(f"severities both blocking and auto-corrected: {names}")


class PolicySettings(_Themed):
    model_config = SettingsConfigDict(env_prefix="PROOFRECON_POLICY_")

    blocking_severities: Annotated[frozenset[Severity], NoDecode] = Field(
        frozenset({Severity.HIGH}),
        description="Severities that block a melt (comma-separated). Must contain HIGH and every "
        "severity above a listed one; a proof the mint reports SPENT or PENDING blocks anyway.",
    )
    auto_correct_severities: Annotated[frozenset[Severity], NoDecode] = Field(
        frozenset({Severity.MEDIUM}),
        description="Severities corrected automatically; the melt then clears after "
        "reconciliation, but only when a correction was actually issued (otherwise it is "
        "BLOCKED / UNRESOLVED_DISCREPANCIES). Disjoint from the blocking ones (comma-separated).",
    )
    max_proofs_per_event: int = Field(
        1000, ge=1, description="Most proofs one token-status event or melt request may carry."
    )
    max_secret_length: int = Field(
        1024, ge=1, description="Longest proof secret accepted (characters)."
    )

    @field_validator("blocking_severities", "auto_correct_severities", mode="before")
    @classmethod
    def _parse_severities(cls, value: Any) -> Any:
        return _split_csv(value)

    @model_validator(mode="after")
    def _consistent(self) -> PolicySettings:
        check_policy_sets(self.blocking_severities, self.auto_correct_severities)
        return self


class PreflightSettings(_Themed):
    model_config = SettingsConfigDict(env_prefix="PROOFRECON_PREFLIGHT_")

    batch_max: int = Field(200, ge=1, description="Most melt requests checked together.")
    batch_within_ms: float = Field(
        2.0, gt=0, description="How long melt requests are gathered into one batch (ms)."
    )
    max_in_flight: int = Field(
        5000,
        ge=1,
        description="Most melt requests being answered at once; more wait (backpressure).",
    )
    max_in_flight_bytes: int = Field(
        64 * 1024 * 1024,
        ge=1024,
        description="Most bytes of melt requests being answered at once (a 1,000-proof request "
        "is ~100 KiB on the wire and several times that in memory); more wait.",
    )
    max_deadline_ms: int = Field(
        10_000,
        gt=0,
        description="Longest a melt request may wait for its answer, whatever its deadline_ms "
        "or requested_at say (a producer's clock is not trusted to stretch it) (ms).",
    )
    reply_topics: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Topics besides the results topic that a melt request may name as its "
        "reply_to (comma-separated). Never a topic proofrecon itself reads or writes, nor an "
        "internal one.",
    )

    @field_validator("reply_topics", mode="before")
    @classmethod
    def _parse_reply_topics(cls, value: Any) -> Any:
        return _split_csv(value)


class SweepSettings(_Themed):
    model_config = SettingsConfigDict(env_prefix="PROOFRECON_SWEEP_")

    enabled: bool = Field(True, description="Re-check unspent and pending proofs on a timer.")
    interval_s: float = Field(10.0, gt=0, description="Seconds between sweep rounds.")
    budget_share: float = Field(
        0.25, gt=0, le=0.9, description="Share of each mint's request budget the sweep may use."
    )
    min_age_s: float = Field(
        60.0, ge=0, description="A proof is re-checked only this long after its last check (s)."
    )


class ClickHouseSettings(_Themed):
    model_config = SettingsConfigDict(env_prefix="PROOFRECON_CLICKHOUSE_")

    url: SecretStr | None = Field(
        None,
        description="chdb:///path for embedded ClickHouse (default: <data_dir>/chdb) or "
        "http(s)://user:pass@host:8123/db for a server (secret: it may hold a password).",
    )
    username: str | None = Field(None, description="Server username (overrides the URL's).")
    password: SecretStr | None = Field(None, description="Server password (overrides the URL's).")
    database: str = Field("proofrecon", description="Database holding the analytics objects.")
    ttl_days: int = Field(400, ge=1, description="Days raw rows are kept.")
    # Each insert has a fixed cost of ~25-30 ms (planning, views, parts): fewer, fuller inserts
    # are what lets one worker pass 100k rows/s. At small traffic the time bound sets the insert
    # rate; embedded inserts (and the merges they cause) share the worker's cores, and at 1 s
    # they cost the worker a third of a core at 50 melts/s and doubled preflight latency.
    batch_max_rows: int = Field(50_000, ge=1, description="Most rows per insert.")
    batch_max_wait_s: float = Field(
        5.0,
        gt=0,
        description="Longest a row waits for its insert: how far analytics may lag behind.",
    )
    sink_enabled: bool = Field(True, description="Run the ClickHouse sink inside the worker.")
    hourly_ttl_days: int = Field(
        1825, ge=1, description="Days the hourly aggregates are kept (they are small)."
    )
    backoff_max_s: float = Field(
        30.0,
        gt=0,
        description="Longest wait between retries while ClickHouse is unavailable (seconds).",
    )
    recent_ids: int = Field(
        100_000,
        ge=0,
        description="Event ids the sink remembers per topic to drop events re-emitted "
        "upstream after a crash (0 turns this off).",
    )


class AlertSettings(_Themed):
    model_config = SettingsConfigDict(env_prefix="PROOFRECON_ALERT_")

    enabled: bool = Field(True, description="Run the alerts agent inside the worker.")
    kinds: Annotated[frozenset[AlertKind], NoDecode] = Field(
        frozenset(AlertKind), description="Alert kinds raised (comma-separated)."
    )
    window_s: int = Field(
        3600,
        ge=60,
        description="Tumbling window of rate and anomaly alerts (seconds, UTC-aligned).",
    )
    grace_s: float = Field(
        120.0, ge=0, description="How long past its end a window still accepts late events (s)."
    )
    idle_after_s: float = Field(
        10.0,
        gt=0,
        description="A mint with no events for this long has its event clock moved on by the "
        "wall clock, so its windows and cool-downs still end (seconds).",
    )
    tick_interval_s: float = Field(
        1.0,
        gt=0,
        description="How often partitions with open windows or groups are woken by the wall "
        "clock (seconds).",
    )
    high_gather_s: float = Field(
        2.0,
        ge=0,
        description="HIGH discrepancies of one npub and mint arriving this soon after the first "
        "are counted into one alert (seconds).",
    )
    high_cooldown_s: float = Field(
        300.0,
        ge=0,
        description="After a HIGH_SEVERITY alert, more HIGH discrepancies of the same npub and "
        "mint within this time are summed into one follow-up alert (seconds, event time).",
    )
    rate_threshold_high: int = Field(
        100,
        ge=0,
        description="HIGH discrepancies per mint and window that raise RATE_THRESHOLD (0: off). "
        "Each npub's HIGH already pages at once; this one is for trouble across npubs.",
    )
    rate_threshold_medium: int = Field(
        50,
        ge=0,
        description="MEDIUM discrepancies per mint and window that raise RATE_THRESHOLD (0: off).",
    )
    rate_threshold_low: int = Field(
        500,
        ge=0,
        description="LOW discrepancies per mint and window that raise RATE_THRESHOLD (0: off).",
    )
    anomaly_alpha: float = Field(
        0.3,
        gt=0,
        le=1,
        description="EWMA weight of the newest window in the anomaly baseline (0 < alpha <= 1).",
    )
    anomaly_deviations: float = Field(
        3.0,
        gt=0,
        description="ANOMALY when a window's rate exceeds the baseline by this many deviations.",
    )
    anomaly_min_deviation_per_1k: float = Field(
        1.0,
        ge=0,
        description="Floor of the deviation (discrepancies per 1,000 proofs), so a perfectly "
        "steady history does not turn every wobble into an anomaly.",
    )
    anomaly_min_count: int = Field(
        5, ge=1, description="Fewest discrepancies in a window for an ANOMALY."
    )
    anomaly_warmup_windows: int = Field(
        6, ge=1, description="Windows of baseline history needed before any ANOMALY is raised."
    )
    mint_alert_on_rate_limit: bool = Field(
        True,
        description="Raise MINT_UNAVAILABLE when a mint rate-limits us, not only when its "
        "circuit opens.",
    )
    mint_flap_cooldown_s: float = Field(
        300.0,
        ge=0,
        description="A mint unavailable again this soon after its last MINT_UNAVAILABLE alert "
        "raises nothing (nor its recovery) (seconds).",
    )
    mint_probe_interval_s: float = Field(
        30.0,
        ge=0,
        description="While a mint's incident is open, ask it (one Y, sweep budget) this often, "
        "so its recovery is seen without traffic or after a restart (seconds; 0: never).",
    )
    dedup_retention_s: float = Field(
        8 * 24 * 3600.0,
        gt=0,
        description="How long raised alert ids are remembered, so a replay never raises one "
        "twice; keep it above the topics' retention (seconds).",
    )
    webhook_url: str | None = Field(
        None, description="Webhook for every alert kind (Alertmanager base URL or a JSON endpoint)."
    )
    webhook_format: Literal["alertmanager", "json"] = Field(
        "alertmanager",
        description="Format of webhook_url: alertmanager (POST {url}/api/v2/alerts) or json "
        "(POST the alert as in recon.alerts).",
    )
    webhook_urls: Annotated[dict[AlertKind, str], NoDecode] = Field(
        default_factory=dict,
        description="Per-kind webhooks overriding webhook_url, comma-separated KIND=url pairs; "
        "an empty url sends that kind nowhere.",
    )
    webhook_formats: Annotated[dict[AlertKind, Literal["alertmanager", "json"]], NoDecode] = Field(
        default_factory=dict,
        description="Per-kind formats overriding webhook_format, comma-separated KIND=format.",
    )
    webhook_timeout_s: float = Field(5.0, gt=0, description="HTTP timeout of one delivery (s).")
    webhook_backoff_initial_s: float = Field(
        0.5, gt=0, description="First retry delay of a failed delivery (seconds, jittered)."
    )
    webhook_backoff_max_s: float = Field(
        30.0, gt=0, description="Longest retry delay of a failed delivery (seconds)."
    )
    webhook_give_up_after_s: float = Field(
        3600.0,
        gt=0,
        description="A delivery still failing this long after its alert is dropped (seconds).",
    )
    webhook_queue_size: int = Field(
        1000, ge=1, description="Alerts waiting per webhook; beyond it they wait in the outbox."
    )
    webhook_batch_max: int = Field(50, ge=1, description="Most alerts in one Alertmanager POST.")
    alertmanager_resolve_after_s: float = Field(
        3600.0,
        gt=0,
        description="endsAt of an Alertmanager alert after its startsAt (incidents end when the "
        "mint recovers) (seconds).",
    )
    alertmanager_incident_ttl_s: float = Field(
        86400.0,
        gt=0,
        description="endsAt of an open MINT_UNAVAILABLE incident, in case its recovery is never "
        "delivered (seconds).",
    )
    generator_url: str | None = Field(
        None,
        description="generatorURL of Alertmanager alerts (default: the worker's web address).",
    )

    @field_validator("kinds", mode="before")
    @classmethod
    def _parse_kinds(cls, value: Any) -> Any:
        return _split_csv(value)

    @field_validator("webhook_urls", "webhook_formats", mode="before")
    @classmethod
    def _parse_per_kind(cls, value: Any) -> Any:
        # KIND=value pairs; split on the first "=" only, since URLs may contain "=" themselves.
        if not isinstance(value, str):
            return value
        pairs: dict[str, str] = {}
        for item in _split_csv(value):
            kind, sep, rest = item.partition("=")
            if not sep:
                raise ValueError("expected comma-separated KIND=value pairs")
            pairs[kind.strip()] = rest.strip()
        return pairs

    @field_validator("webhook_url", "webhook_urls", "generator_url")
    @classmethod
    def _http_urls(cls, value: Any) -> Any:
        urls = value.values() if isinstance(value, dict) else [value]
        for url in urls:
            if url and not str(url).startswith(("http://", "https://")):
                raise ValueError("webhook and generator URLs must be http(s) URLs")
        return value


class WebSettings(_Themed):
    model_config = SettingsConfigDict(env_prefix="PROOFRECON_WEB_")

    host: str = Field(
        "127.0.0.1",
        description="Interface the worker's web server binds. Beyond loopback it needs auth_token "
        "(a worker or sink refuses to start without one).",
    )
    port: int = Field(6066, ge=1, le=65535, description="The worker's web port.")
    auth_token: SecretStr | None = Field(
        None,
        description="Bearer token every web endpoint asks for (Authorization: Bearer <token>), "
        "except /healthz and /readyz (and /metrics when metrics_public).",
    )
    metrics_public: bool = Field(
        False, description="Serve /metrics without the bearer token (for a Prometheus scraper)."
    )
    validate_budget_share: float = Field(
        0.05,
        gt=0,
        le=0.5,
        description="Share of each mint's request budget that POST /v1/validate may use; beyond "
        "it validate answers BLOCK at once, so validate calls can never starve melts.",
    )
    max_body_bytes: int = Field(
        256 * 1024, ge=1024, description="Largest request body the web API accepts (bytes)."
    )

    @property
    def exposed(self) -> bool:
        """Bound beyond this machine (anything but a loopback address)."""
        return not _is_loopback_host(self.host)


class Settings(BaseModel):
    """All themes together. Build with `load_settings()`."""

    model_config = {"frozen": True, "hide_input_in_errors": True}

    data_dir: Path
    log_level: str
    kafka: KafkaSettings
    topics: TopicSettings
    mint: MintSettings
    policy: PolicySettings
    preflight: PreflightSettings
    sweep: SweepSettings
    clickhouse: ClickHouseSettings
    alerts: AlertSettings
    web: WebSettings

    @property
    def clickhouse_url(self) -> str:
        if self.clickhouse.url is not None:
            return self.clickhouse.url.get_secret_value()
        return f"chdb://{(self.data_dir / 'chdb').resolve()}"

    def check_web_exposure(self) -> None:
        """A web API bound beyond loopback without a token would let anyone validate, export
        and spend the mint budget: refuse to start (review finding 7)."""
        if self.web.exposed and self.web.auth_token is None:
            raise ConfigError(
                f"the web API would listen on {self.web.host} without authentication: set "
                "PROOFRECON_WEB_AUTH_TOKEN, or bind PROOFRECON_WEB_HOST=127.0.0.1"
            )

    @property
    def reply_topics(self) -> frozenset[str]:
        """Where answers may go: the results topic and the allow-listed reply topics."""
        return frozenset({self.topics.preflight_results, *self.preflight.reply_topics})

    @model_validator(mode="after")
    def _reply_topics_are_the_wallets(self) -> Settings:
        own = {getattr(self.topics, name) for name in self.topics.topic_fields()}
        own.discard(self.topics.preflight_results)
        for name in self.preflight.reply_topics:
            if not _TOPIC_NAME.fullmatch(name):
                raise ValueError(f"reply topic {name[:60]!r} is not a Kafka topic name")
            if name in own or name.startswith(("__", "_", f"{self.kafka.app_id}-")):
                raise ValueError(
                    f"reply topic {name!r} is a topic proofrecon reads or writes itself, or an "
                    "internal one: answers there would corrupt it"
                )
        return self


class CoreSettings(_Themed):
    model_config = SettingsConfigDict(env_prefix="PROOFRECON_")

    data_dir: Path = Field(
        Path("./.data"), description="Directory for table stores, embedded chDB and state."
    )
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field(
        "INFO", description="Log level of the JSON log lines."
    )


THEMES: dict[str, type[BaseSettings]] = {
    "kafka": KafkaSettings,
    "topics": TopicSettings,
    "mint": MintSettings,
    "policy": PolicySettings,
    "preflight": PreflightSettings,
    "sweep": SweepSettings,
    "clickhouse": ClickHouseSettings,
    "alerts": AlertSettings,
    "web": WebSettings,
}


def load_settings(env_file: str | Path | None = None, **overrides: Any) -> Settings:
    """Read every theme from the environment (and `env_file` if given).

    `overrides` maps a theme name to a dict of field values, e.g. `topics={"partitions": 3}`.
    """
    core = CoreSettings(_env_file=env_file)
    themes = {
        name: cls(_env_file=env_file, **overrides.get(name, {})) for name, cls in THEMES.items()
    }
    core_over = {k: v for k, v in overrides.items() if k not in THEMES}
    return Settings(
        data_dir=core_over.get("data_dir", core.data_dir),
        log_level=core_over.get("log_level", core.log_level),
        **themes,
    )


def _env_value(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, SecretStr):
        return value.get_secret_value()
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list | tuple):
        return ",".join(str(v) for v in value)
    if isinstance(value, frozenset | set):
        return ",".join(sorted(str(v) for v in value))
    if isinstance(value, dict):
        if any(isinstance(v, dict) for v in value.values()):
            return json.dumps(value, separators=(",", ":")) if value else ""
        return ",".join(f"{k}={v}" for k, v in value.items())
    return str(value)


def render_env_example() -> str:
    """The text of `.env.example`: every variable, its description and its default."""
    lines = [
        "# proofrecon settings. Every variable is optional; the value shown is the default.",
        "# Generated from streams/settings.py (python -m streams.settings > .env.example).",
    ]
    themes: list[tuple[str, type[BaseSettings]]] = [("core", CoreSettings), *THEMES.items()]
    for title, cls in themes:
        prefix = str(cls.model_config.get("env_prefix", ""))
        lines += ["", f"# --- {title} ---"]
        for name, field in cls.model_fields.items():
            default = field.get_default(call_default_factory=True)
            lines.append(f"# {field.description}")
            # Unset-by-default variables stay commented: an empty value is not "unset".
            comment = "# " if default is None else ""
            lines.append(f"{comment}{prefix}{name.upper()}={_env_value(default)}")
    return "\n".join(lines) + "\n"


def to_env(settings: Settings) -> dict[str, str]:
    """The environment variables that reproduce `settings` (for starting a worker process)."""
    env = {
        "PROOFRECON_DATA_DIR": str(settings.data_dir),
        "PROOFRECON_LOG_LEVEL": settings.log_level,
    }
    for name, cls in THEMES.items():
        theme = getattr(settings, name)
        prefix = str(cls.model_config.get("env_prefix", ""))
        for field_name in cls.model_fields:
            value = getattr(theme, field_name)
            if value is not None:
                env[f"{prefix}{field_name.upper()}"] = _env_value(value)
    return env


if __name__ == "__main__":
    print(render_env_example(), end="")
