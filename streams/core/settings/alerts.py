"""Alerting: rules, windows, anomalies, webhooks."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field, field_validator
from pydantic_settings import NoDecode, SettingsConfigDict

from streams.core.domain import AlertKind
from streams.core.settings._base import Themed, split_csv


class AlertSettings(Themed):
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
        return split_csv(value)

    @field_validator("webhook_urls", "webhook_formats", mode="before")
    @classmethod
    def _parse_per_kind(cls, value: Any) -> Any:
        # KIND=value pairs; split on the first "=" only, since URLs may contain "=" themselves.
        if not isinstance(value, str):
            return value
        pairs: dict[str, str] = {}
        for item in split_csv(value):
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
