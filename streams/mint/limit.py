"""How many Ys one checkstate request may carry: min(configured, advertised, learned).

Learned by halving on a documented too-long answer, and grown back (doubled) after enough full
answers at the learned size: a glitch must not shrink requests for good (review finding 13).
"""

from __future__ import annotations

# Full answers at a learned (halved) limit before twice as many Ys are tried again.
GROW_AFTER_ANSWERS = 20


class BatchLimit:
    def __init__(self, configured: int) -> None:
        self.configured = configured
        self.advertised: int | None = None
        self.current = configured
        self._good = 0

    @property
    def cap(self) -> int:
        """The most the limit may grow back to: configured, and what the mint advertises."""
        return min(self.configured, self.advertised or self.configured)

    def advertise(self, limit: int | None) -> bool:
        """The mint's /v1/info says `limit`; True if that lowered the current limit."""
        self.advertised = limit
        if limit is not None and limit < self.current:
            self.current = limit
            return True
        return False

    def halve(self, sent: int) -> int:
        """A request of `sent` Ys was refused as too long: the new limit."""
        self._good = 0
        self.current = min(self.current, max(1, sent // 2))
        return self.current

    def answered(self, sent: int) -> bool:
        """A request of `sent` Ys was answered; True if the limit grew."""
        if self.current >= self.cap or sent < self.current:
            return False
        self._good += 1
        if self._good < GROW_AFTER_ANSWERS:
            return False
        self._good = 0
        self.current = min(self.cap, self.current * 2)
        return True
