"""The severity policy, the preflight's batching and bounds, the sweep."""

from __future__ import annotations

import itertools
from typing import Annotated, Any, Literal

from pydantic import Field, field_validator, model_validator
from pydantic_settings import NoDecode, SettingsConfigDict

from streams.core.domain import Severity
from streams.core.settings._base import Themed, split_csv

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


class PolicySettings(Themed):
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
        return split_csv(value)

    @model_validator(mode="after")
    def _consistent(self) -> PolicySettings:
        check_policy_sets(self.blocking_severities, self.auto_correct_severities)
        return self


class PreflightSettings(Themed):
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
    live_state: Literal["fallback", "prefer", "never"] = Field(
        "fallback",
        description="Whether a melt may be answered from the live watch's state of its proofs "
        "(fresh: the connection alive and confirmed within PROOFRECON_WATCH_FRESH_MAX_AGE_S). "
        "fallback: only when the mint cannot be asked in time (budget spent, silenced after a "
        "429) instead of blocking; prefer: without an HTTP request whenever it is fresh; "
        "never: HTTP only.",
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
        return split_csv(value)


class SweepSettings(Themed):
    model_config = SettingsConfigDict(env_prefix="PROOFRECON_SWEEP_")

    enabled: bool = Field(True, description="Re-check unspent and pending proofs on a timer.")
    interval_s: float = Field(10.0, gt=0, description="Seconds between sweep rounds.")
    budget_share: float = Field(
        0.25, gt=0, le=0.9, description="Share of each mint's request budget the sweep may use."
    )
    min_age_s: float = Field(
        60.0, ge=0, description="A proof is re-checked only this long after its last check (s)."
    )
