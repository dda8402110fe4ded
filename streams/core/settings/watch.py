"""The live proof-state watch (NUT-17): which proofs to watch, within which limits per mint."""

from __future__ import annotations

from typing import Literal

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from streams.core.settings._base import Themed


class WatchSettings(Themed):
    model_config = SettingsConfigDict(env_prefix="PROOFRECON_WATCH_")

    enabled: bool = Field(
        True,
        description="Watch proof states live over NUT-17 at every allow-listed mint that "
        "advertises proof_state (others are left to the sweep).",
    )
    max_filters_per_mint: int = Field(
        3000,
        ge=1,
        description="Most Ys watched at one mint: pending ones first, then those of recent melt "
        "requests, then unspent ones by unspent_priority.",
    )
    max_connections_per_mint: int = Field(
        4,
        ge=1,
        le=16,
        description="Most WebSocket connections to one mint (each holds up to 999 Ys). A mint "
        "allows ~1000 WebSocket clients in all, shared by every user: keep it small.",
    )
    messages_per_minute: float = Field(
        10.0,
        gt=0,
        description="WebSocket messages (connects included) per minute to one mint; Nutshell "
        "allows 20 per client IP. Workers sharing an egress IP share it.",
    )
    limiter_limit: int = Field(
        20,
        ge=1,
        description="The mint's WebSocket message limit per window and IP (Nutshell: 20/min).",
    )
    keepalive_s: float = Field(
        240.0,
        gt=0,
        description="A cheap JSON-RPC message this often on an idle connection (Nutshell closes "
        "a socket with no message for 600 s; pings do not count) (seconds).",
    )
    snapshot_interval_s: float = Field(
        120.0,
        gt=0,
        description="A checkstate snapshot of every watched Y this often, from the sweep's "
        "budget share: notifications may be missing or dropped (seconds).",
    )
    fresh_max_age_s: float = Field(
        150.0,
        gt=0,
        description="A watched Y's state is known truth while its connection is alive and it "
        "was confirmed within this many seconds.",
    )
    unspent_priority: Literal["recent", "amount"] = Field(
        "recent",
        description="Which unspent proofs are watched first within the budget: the most "
        "recently changed tokens, or the largest amounts.",
    )
    melt_watch_s: float = Field(
        600.0,
        ge=0,
        description="How long the Ys of a melt request stay in the melt tier, ahead of other "
        "unspent ones (seconds).",
    )
