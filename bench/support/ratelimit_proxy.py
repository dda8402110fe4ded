"""A rate-limiting HTTP proxy in front of a real mint: a remote mint's limiter, on localhost.

Nutshell exempts 127.0.0.1 from its limiter, so a local mint never says 429. This proxy limits
per client (X-Forwarded-For, else the peer address) and forwards allowed requests to the real
mint, so answers carry the mint's real states. A blocked request gets 429 with Nutshell's body
and no Retry-After. Two limiters:

- `design` (a fixed window, the default): at most `limit` requests in any `window_s`
  (moving window); the request over it starts a block of `window_s`, and every request during
  the block restarts it.
- `elastic`: what Nutshell 0.20.2 actually runs, slowapi's "fixed-window-elastic-expiry"
  (limits' MemoryStorage.incr): every request, allowed or not, adds one to the count and pushes
  its expiry to now + `window_s`; the count resets only after `window_s` without any request.
  So a client that never pauses for a whole window is blocked after `limit` requests in all,
  however slowly it sends them.

    async with RateLimitProxy(upstream="http://127.0.0.1:3338", mode="design") as proxy:
        ... proxy.url ...  proxy.stats.rate_limited ...
"""

from __future__ import annotations

import math
import time
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal, Protocol, Self

import aiohttp
from aiohttp import web

from devkit.local_http import LocalServer

LimiterMode = Literal["design", "elastic"]
Clock = Callable[[], float]
_HOP_HEADERS = frozenset({"host", "content-length", "connection", "transfer-encoding"})


class Limiter(Protocol):
    def allow(self, now: float) -> bool: ...


class DesignLimiter:
    """`limit` requests per moving `window_s`; a block restarts with every request during it."""

    def __init__(self, limit: int = 60, window_s: float = 60.0) -> None:
        self.limit = limit
        self.window_s = window_s
        self._hits: deque[float] = deque()
        self._blocked_until = -math.inf

    def allow(self, now: float) -> bool:
        if now < self._blocked_until:
            self._blocked_until = now + self.window_s
            return False
        while self._hits and self._hits[0] <= now - self.window_s:
            self._hits.popleft()
        if len(self._hits) >= self.limit:
            self._hits.clear()
            self._blocked_until = now + self.window_s
            return False
        self._hits.append(now)
        return True


class ElasticLimiter:
    """limits' fixed window with elastic expiry, as Nutshell configures slowapi."""

    def __init__(self, limit: int = 60, window_s: float = 60.0) -> None:
        self.limit = limit
        self.window_s = window_s
        self._count = 0
        self._expires = -math.inf

    def allow(self, now: float) -> bool:
        if now >= self._expires:
            self._count = 0
        self._count += 1
        self._expires = now + self.window_s
        return self._count <= self.limit


@dataclass
class ProxyStats:
    requests: int = 0
    forwarded: int = 0
    rate_limited: int = 0
    upstream_errors: int = 0
    by_path: Counter[str] = field(default_factory=Counter)
    first_429_s: float | None = None  # seconds after the proxy started

    def to_json(self) -> dict[str, object]:
        return {
            "requests": self.requests,
            "forwarded": self.forwarded,
            "rate_limited": self.rate_limited,
            "upstream_errors": self.upstream_errors,
            "by_path": dict(self.by_path),
            "first_429_s": self.first_429_s,
        }


class RateLimitProxy(LocalServer):
    def __init__(
        self,
        upstream: str,
        *,
        mode: LimiterMode = "design",
        limit: int = 60,
        window_s: float = 60.0,
        clock: Clock = time.monotonic,
    ) -> None:
        super().__init__()
        self.upstream = upstream.rstrip("/")
        self.mode = mode
        self.limit = limit
        self.window_s = window_s
        self.stats = ProxyStats()
        self._clock = clock
        self._started = clock()
        self._limiters: dict[str, Limiter] = {}
        self._session: aiohttp.ClientSession | None = None

    def _limiter(self, client: str) -> Limiter:
        if client not in self._limiters:
            cls = DesignLimiter if self.mode == "design" else ElasticLimiter
            self._limiters[client] = cls(self.limit, self.window_s)
        return self._limiters[client]

    def routes(self, app: web.Application) -> None:
        app.router.add_route("*", "/{tail:.*}", self._handle)

    async def start(self) -> Self:
        self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30))
        await super().start()
        self._started = self._clock()
        return self

    async def stop(self) -> None:
        await super().stop()
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        self.stats.requests += 1
        self.stats.by_path[request.path] += 1
        client = request.headers.get("X-Forwarded-For", request.remote or "?").split(",")[0]
        now = self._clock()
        if not self._limiter(client.strip()).allow(now):
            self.stats.rate_limited += 1
            if self.stats.first_429_s is None:
                self.stats.first_429_s = round(now - self._started, 3)
            # Nutshell's slowapi handler: this body, no Retry-After.
            return web.json_response({"detail": "Rate limit exceeded."}, status=429)
        return await self._forward(request)

    async def _forward(self, request: web.Request) -> web.StreamResponse:
        assert self._session is not None
        headers = {k: v for k, v in request.headers.items() if k.lower() not in _HOP_HEADERS}
        body = await request.read()
        try:
            async with self._session.request(
                request.method,
                f"{self.upstream}{request.path_qs}",
                data=body or None,
                headers=headers,
            ) as upstream:
                payload = await upstream.read()
                content_type = upstream.headers.get("Content-Type", "application/json")
                self.stats.forwarded += 1
                return web.Response(
                    body=payload, status=upstream.status, headers={"Content-Type": content_type}
                )
        except (aiohttp.ClientError, TimeoutError) as exc:
            self.stats.upstream_errors += 1
            return web.json_response({"detail": f"upstream: {type(exc).__name__}"}, status=502)
