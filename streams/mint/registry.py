"""One gateway per allow-listed mint, created on first use.

Every mint URL reaching the service comes from wallet events, so it is untrusted input: a URL not
on the allow-list is refused with MintNotAllowed before any request is made (a hostile event must
not make the worker probe arbitrary hosts).
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import datetime
from typing import Any

import httpx

from streams.core.domain import MintState, Source
from streams.core.errors import MintNotAllowed
from streams.core.mint_url import normalise_or_strip
from streams.core.settings import MintSettings, Settings
from streams.mint.gateway import DEFAULT_SWEEP_SHARE, DEFAULT_VALIDATE_SHARE, MintGateway
from streams.mint.limiter import Clock
from streams.mint.observer import GatewayObserver, HealthListener

_ALLOWED_SCHEMES = ("http://", "https://")


class MintGateways:
    """Get-or-create a `MintGateway` per normalised, allow-listed mint URL."""

    def __init__(
        self,
        settings: MintSettings,
        *,
        sweep_budget_share: float = DEFAULT_SWEEP_SHARE,
        validate_budget_share: float = DEFAULT_VALIDATE_SHARE,
        clock: Clock | None = None,
        observer: GatewayObserver | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        event_hooks: Mapping[str, list[Callable[..., Any]]] | None = None,
        wall_clock: Callable[[], datetime] | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.settings = settings
        self._allowed = frozenset(normalise_or_strip(u) for u in settings.allowlist)
        self._options: dict[str, Any] = {
            "sweep_budget_share": sweep_budget_share,
            "validate_budget_share": validate_budget_share,
            "clock": clock,
            "observer": observer,
            "transport": transport,
            "event_hooks": event_hooks,
            "wall_clock": wall_clock,
            "rng": rng,
        }
        self._gateways: dict[str, MintGateway] = {}
        self._listeners: list[HealthListener] = []

    @classmethod
    def from_settings(cls, settings: Settings, **options: Any) -> MintGateways:
        """Gateways for the whole service: mint settings, and the sweep's share of each budget."""
        options.setdefault("sweep_budget_share", settings.sweep.budget_share)
        options.setdefault("validate_budget_share", settings.web.validate_budget_share)
        return cls(settings.mint, **options)

    def is_allowed(self, mint_url: str) -> bool:
        url = normalise_or_strip(mint_url)
        return url.startswith(_ALLOWED_SCHEMES) and url in self._allowed

    def get(self, mint_url: str) -> MintGateway:
        """The gateway for `mint_url`; MintNotAllowed (and no request) if it is not allow-listed."""
        url = normalise_or_strip(mint_url)
        gateway = self._gateways.get(url)
        if gateway is not None:
            return gateway
        if not self.is_allowed(url):
            raise MintNotAllowed("not on the allow-list", mint_url=url[:200])
        gateway = MintGateway(url, self.settings, **self._options)
        for listener in self._listeners:
            gateway.add_health_listener(listener)
        self._gateways[url] = gateway
        return gateway

    async def check(
        self,
        mint_url: str,
        ys: Sequence[str],
        *,
        deadline_s: float | None = None,
        source: Source = Source.PREFLIGHT,
    ) -> dict[str, MintState]:
        return await self.get(mint_url).check(ys, deadline_s=deadline_s, source=source)

    def add_health_listener(self, listener: HealthListener) -> None:
        """Listen to the health of every gateway, those that exist and those created later."""
        self._listeners.append(listener)
        for gateway in self._gateways.values():
            gateway.add_health_listener(listener)

    def __iter__(self) -> Iterator[MintGateway]:
        return iter(list(self._gateways.values()))

    def __len__(self) -> int:
        return len(self._gateways)

    async def close(self) -> None:
        gateways, self._gateways = list(self._gateways.values()), {}
        for gateway in gateways:
            await gateway.close()
