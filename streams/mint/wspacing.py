"""How many WebSocket messages we send one mint: a budget shared by all our connections to it.

Nutshell 0.20.2 (cashu/mint/limit.py, events/client.py) counts every WebSocket connect and every
message a client sends in the *transaction* bucket: MINT_TRANSACTION_RATE_LIMIT_PER_MINUTE
(default 20) per client IP, with limits' "fixed-window-elastic-expiry" strategy, like its HTTP
limiter (see pacing.py): every hit pushes the window's expiry a minute ahead, so the count resets
only after a whole minute in which we sent nothing. A steady trickle, however slow, eventually
runs into the limit. 127.0.0.1 is exempt; behind a proxy the client is X-Forwarded-For's first
entry. A refused message is answered with a JSON-RPC error carrying id 0 and is dropped; a
refused connect is closed before the handshake completes. The bucket is per IP, shared by all
our connections and by anyone else behind our address, and it is separate from the 60/min HTTP
bucket the gateway paces.

So the budget is the gateway's model applied to messages: a token bucket (`messages_per_minute`,
`burst`) smooths, and an elastic window allows at most the limit less a margin per session and
then forces a full quiet minute. A message is taken as counted up to `slack_s` after we sent it
(the mint reads it a little later). After a refusal the whole window counts as spent: the quiet
must pass before anything else is sent.
"""

from __future__ import annotations

import asyncio
import math
import time

from streams.mint.limiter import Clock, LimiterSpec, RequestWindow, TokenBucket, request_window


class MessageBudget:
    """Paces every message (connect included) that our connections send to one mint."""

    def __init__(
        self,
        *,
        messages_per_minute: float,
        burst: int,
        limiter: LimiterSpec | None,
        clock: Clock | None = None,
    ) -> None:
        self._clock = clock or time.monotonic
        self.bucket = TokenBucket(messages_per_minute / 60.0, float(burst), self._clock)
        self.window: RequestWindow = request_window(limiter, self._clock)
        self.sent = 0
        self._lock = asyncio.Lock()

    def wait_time(self) -> float:
        """Seconds until a message may go (0: now)."""
        return max(self.bucket.wait_time(), self.window.wait_time())

    def try_take(self) -> bool:
        """Take one message's allowance now, or return False; never waits."""
        if self.wait_time() > 0 or not self.bucket.try_take():
            return False
        self.window.take()
        # The mint counts it when it reads it: up to `slack_s` later (ElasticWindow's model).
        self.window.sent()
        self.window.done(answered=False)
        self.sent += 1
        return True

    async def acquire(self) -> None:
        """Wait for, and take, one message's allowance. Waiters are served in order."""
        async with self._lock:
            while True:
                if self.try_take():
                    return
                await asyncio.sleep(_bounded(self.wait_time()))

    async def ready(self) -> None:
        """Wait until a message could go now, without taking it."""
        while True:
            wait = self.wait_time()
            if wait <= 0:
                return
            await asyncio.sleep(_bounded(wait))

    def note_refused(self) -> None:
        """The mint refused a message as over its limit: assume its window is spent."""
        self.window.exhaust()


def _bounded(wait: float) -> float:
    # An infinite wait means a misconfiguration (a window budget below one message); a minute
    # keeps the loop alive and visible rather than sleeping forever.
    return 60.0 if math.isinf(wait) else max(wait, 0.001)
