"""What a mint gateway reports: its health, and hooks for metrics.

The gateway calls an observer at each HTTP exchange, each caller's check, each cache hit and each
health change. The default observer does nothing; the worker binds one to Prometheus. Observers
are called inline on the event loop: they must be fast and must not raise (the gateway logs and
swallows what they raise, so a broken metric never blocks a melt).
"""

from __future__ import annotations

from collections.abc import Callable
from enum import StrEnum
from typing import Protocol

from streams.core.domain import Source


class MintHealth(StrEnum):
    """A mint as its gateway sees it.

    OK: answering. DEGRADED: the last exchange failed but the circuit is still closed.
    RATE_LIMITED: inside the silence after a 429. CIRCUIT_OPEN: failing fast after repeated
    failures (until a half-open probe succeeds).
    """

    OK = "OK"
    DEGRADED = "DEGRADED"
    RATE_LIMITED = "RATE_LIMITED"
    CIRCUIT_OPEN = "CIRCUIT_OPEN"


class RequestOutcome(StrEnum):
    """How one HTTP exchange with a mint ended (a metrics label)."""

    OK = "ok"
    RATE_LIMITED = "rate_limited"
    TOO_LONG = "too_long"
    SERVER_ERROR = "server_error"
    TRANSPORT_ERROR = "transport_error"
    TIMEOUT = "timeout"
    PROTOCOL_ERROR = "protocol_error"
    CANARY_MISMATCH = "canary_mismatch"


HealthListener = Callable[[str, MintHealth, MintHealth], None]
"""Called as listener(mint_url, old, new) whenever a gateway's health changes."""


class GatewayObserver(Protocol):
    def request_finished(
        self, mint_url: str, *, ys: int, outcome: RequestOutcome, latency_s: float
    ) -> None:
        """One HTTP checkstate exchange ended; `ys` counts the Ys it carried (canary included)."""

    def check_finished(
        self, mint_url: str, *, source: Source, ys: int, outcome: str, latency_s: float
    ) -> None:
        """One caller's check ended; `outcome` is "ok" or the raised error's stable code."""

    def cache_hits(self, mint_url: str, *, source: Source, hits: int) -> None:
        """`hits` Ys of a check were answered from the SPENT cache, without asking the mint."""

    def health_changed(self, mint_url: str, old: MintHealth, new: MintHealth) -> None:
        """The gateway's health moved from `old` to `new`."""


class NullObserver:
    """The default: observes nothing."""

    def request_finished(
        self, mint_url: str, *, ys: int, outcome: RequestOutcome, latency_s: float
    ) -> None:
        return None

    def check_finished(
        self, mint_url: str, *, source: Source, ys: int, outcome: str, latency_s: float
    ) -> None:
        return None

    def cache_hits(self, mint_url: str, *, source: Source, hits: int) -> None:
        return None

    def health_changed(self, mint_url: str, old: MintHealth, new: MintHealth) -> None:
        return None
