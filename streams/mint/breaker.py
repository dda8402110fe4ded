"""A circuit breaker per mint: after repeated failures, fail fast instead of piling on.

CLOSED lets every request through. `failure_threshold` consecutive failures open it: for
`cooldown_s` every check fails at once with MintCircuitOpen, so a preflight is answered
(BLOCKED / MINT_UNAVAILABLE) in microseconds instead of after its whole deadline. Then it is
HALF_OPEN: exactly one probe goes out; its success closes the circuit, its failure re-opens it for
another cool-down. An exchange that ends with no verdict on the mint's health (a 429, a caller's
deadline) releases the probe slot without moving the state.
"""

from __future__ import annotations

import time
from enum import StrEnum

from streams.mint.limiter import Clock


class BreakerState(StrEnum):
    CLOSED = "CLOSED"
    OPEN = "OPEN"
    HALF_OPEN = "HALF_OPEN"


class CircuitBreaker:
    def __init__(
        self, *, failure_threshold: int, cooldown_s: float, clock: Clock | None = None
    ) -> None:
        if failure_threshold < 1:
            raise ValueError("failure_threshold must be at least 1")
        self.failure_threshold = failure_threshold
        self.cooldown_s = cooldown_s
        self._clock = clock or time.monotonic
        self._failures = 0
        self._opened_at: float | None = None
        self._probe_in_flight = False

    @property
    def consecutive_failures(self) -> int:
        return self._failures

    @property
    def state(self) -> BreakerState:
        if self._opened_at is None:
            return BreakerState.CLOSED
        if self._clock() - self._opened_at < self.cooldown_s:
            return BreakerState.OPEN
        return BreakerState.HALF_OPEN

    def retry_after(self) -> float:
        """Seconds until a request may go out again (0 when one may go now)."""
        state = self.state
        if state is BreakerState.OPEN:
            assert self._opened_at is not None
            return max(0.0, self._opened_at + self.cooldown_s - self._clock())
        if state is BreakerState.HALF_OPEN and self._probe_in_flight:
            # The probe decides; a caller should come back about when it will have.
            return min(1.0, self.cooldown_s)
        return 0.0

    def admits(self) -> bool:
        """Would a request be let through now? Does not claim the half-open probe."""
        state = self.state
        if state is BreakerState.CLOSED:
            return True
        return state is BreakerState.HALF_OPEN and not self._probe_in_flight

    def acquire(self) -> bool:
        """Claim permission to send one exchange; in HALF_OPEN this claims the single probe."""
        state = self.state
        if state is BreakerState.CLOSED:
            return True
        if state is BreakerState.HALF_OPEN and not self._probe_in_flight:
            self._probe_in_flight = True
            return True
        return False

    def record_success(self) -> None:
        # Any trustworthy answer proves the mint is back, even one sent before the circuit opened.
        self._failures = 0
        self._opened_at = None
        self._probe_in_flight = False

    def record_failure(self) -> None:
        self._failures += 1
        failed_probe = self._probe_in_flight or self.state is BreakerState.HALF_OPEN
        tripped = self._opened_at is None and self._failures >= self.failure_threshold
        if failed_probe or tripped:
            self._open()

    def release(self) -> None:
        """An exchange ended without a verdict on the mint's health: free the probe slot."""
        self._probe_in_flight = False

    def _open(self) -> None:
        self._opened_at = self._clock()
        self._probe_in_flight = False
