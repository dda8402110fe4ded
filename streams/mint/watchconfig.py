"""A live watch's configuration and its metrics hooks.

Defaults, against what mints allow one client (Nutshell 0.20.2 read in its source; CDK 0.18 as
measured, newer CDK releases read in cdk-axum's ws/limits.rs):

- Filters. Nutshell refuses a subscribe once a connection holds 1000 filters of a kind (and never
  frees one on unsubscribe) and takes at most `mint_max_request_length` (1000) per message; CDK
  0.18 takes 100 subscriptions of 1000 filters per connection, newer CDK 1000 topics per
  connection. So 1000 per connection (one kept for the keep-alive's subscription, which newer CDK
  counts), 1000 per message, and 3000 per mint on at most 4 connections: 3 carry the budget and
  the 4th lets a connection be replaced without going over. Every mint allows ~500-1000
  WebSocket clients *in total*, shared by all its users: a few are plenty.
- Messages. Nutshell counts every connect and message against 20/min per IP with an elastic
  window (wspacing.py): 10/min with a burst of 5, and at most 15 (20 less a quarter for other
  clients behind our address) before a quiet minute. Newer CDK charges a connection one unit per
  filter at 32/s with a burst of 1024: a full subscribe every ~31 s per connection, far more
  than we send.
- Keep-alive every 240 s: Nutshell closes a socket idle for 600 s, and a keep-alive may have to
  wait out a forced quiet minute first. Newer CDK closes after 120 s without inbound frames, but
  counts the pong aiohttp returns to its 30 s pings.
- A checkstate snapshot of every watched Y every 120 s (3000 Ys: three requests, a small part of
  the gateway's sweep share), and of every newly subscribed Y half a second after its subscribe.
  A state is fresh for 150 s: past the next snapshot, with room for one to fail.
- Reconnect after 1 s, doubling to 120 s, with jitter (many workers must not hit a restarted
  mint at once).
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Protocol

from streams.core.domain import MintState
from streams.core.settings import LimiterModel


@dataclass(frozen=True, slots=True)
class WatchConfig:
    max_filters_per_mint: int = 3000
    max_connections_per_mint: int = 4
    filters_per_connection: int = 1000
    filters_per_message: int = 1000
    max_subscriptions_per_connection: int = 50
    messages_per_minute: float = 10.0
    message_burst: int = 5
    limiter_model: LimiterModel = "elastic"
    limiter_limit: int = 20
    limiter_window_s: float = 60.0
    limiter_margin: float = 0.25
    limiter_slack_s: float = 1.0
    keepalive_s: float = 240.0
    mint_idle_timeout_s: float = 600.0
    ping_interval_s: float = 30.0
    request_timeout_s: float = 10.0
    gather_s: float = 0.5
    snapshot_interval_s: float = 120.0
    snapshot_delay_s: float = 0.5
    snapshot_batch_size: int = 1000
    snapshot_retry_s: float = 10.0
    backoff_initial_s: float = 1.0
    backoff_max_s: float = 120.0
    fresh_max_age_s: float = 150.0
    rebuild_dead_fraction: float = 0.5
    # Sent with every WebSocket handshake (e.g. X-Forwarded-For for a proxy in front of us).
    headers: tuple[tuple[str, str], ...] = ()

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, int | float) and not isinstance(value, bool) and value < 0:
                raise ValueError(f"WatchConfig.{f.name} must not be negative")
        if min(self.filters_per_connection, self.filters_per_message) < 2:
            raise ValueError("a connection and a message must carry at least 2 filters")
        if self.max_connections_per_mint < 1 or self.messages_per_minute <= 0:
            raise ValueError("a watch needs a connection and a positive message rate")
        capacity = self.max_connections_per_mint * self.slots_per_connection
        if self.max_filters_per_mint > capacity:
            raise ValueError(
                f"max_filters_per_mint {self.max_filters_per_mint} exceeds what "
                f"{self.max_connections_per_mint} connections hold ({capacity})"
            )
        # A keep-alive may wait out a forced quiet window and a slow answer before it goes.
        quiet = (
            0.0 if self.limiter_model == "none" else self.limiter_window_s + self.limiter_slack_s
        )
        if self.keepalive_s + quiet + self.request_timeout_s >= self.mint_idle_timeout_s:
            raise ValueError("keepalive_s leaves no room before the mint's idle timeout")

    @property
    def slots_per_connection(self) -> int:
        """Ys one connection may watch: one filter is kept for the keep-alive subscription."""
        return self.filters_per_connection - 1


class WatchObserver(Protocol):
    """Metrics hooks, called inline on the event loop: fast, and never raising (what they raise
    is logged and swallowed)."""

    def gauges(self, mint_url: str, *, wanted: int, watched: int, connections: int) -> None:
        """Ys wanted, Ys watched now (subscribed on a live connection), connections open."""

    def message_sent(self, mint_url: str, *, kind: str) -> None:
        """kind: connect | subscribe | unsubscribe | keepalive."""

    def notification(self, mint_url: str, *, state: MintState) -> None:
        """A valid notification about a watched Y was used."""

    def reconnect(self, mint_url: str, *, reason: str) -> None:
        """reason: lost (the mint closed it or it broke) | recycle (we replaced it)."""

    def snapshot(self, mint_url: str, *, ys: int, outcome: str) -> None:
        """outcome: ok, or the error's code (e.g. MINT_RATE_LIMITED)."""

    def rejected(self, mint_url: str, *, reason: str) -> None:
        """Something from the mint was refused, or the mint refused one of our messages."""


class NullWatchObserver:
    def gauges(self, mint_url: str, *, wanted: int, watched: int, connections: int) -> None:
        return None

    def message_sent(self, mint_url: str, *, kind: str) -> None:
        return None

    def notification(self, mint_url: str, *, state: MintState) -> None:
        return None

    def reconnect(self, mint_url: str, *, reason: str) -> None:
        return None

    def snapshot(self, mint_url: str, *, ys: int, outcome: str) -> None:
        return None

    def rejected(self, mint_url: str, *, reason: str) -> None:
        return None
