"""Talking to mints: one paced, coalescing, validating NUT-07 gateway per allow-listed mint URL."""

from streams.mint.cache import SeenState
from streams.mint.gateway import MintGateway, SweepAllowance
from streams.mint.observer import (
    GatewayObserver,
    HealthListener,
    MintHealth,
    NullObserver,
    RequestOutcome,
)
from streams.mint.protocol import normalise_mint_url
from streams.mint.registry import MintGateways

__all__ = [
    "GatewayObserver",
    "HealthListener",
    "MintGateway",
    "MintGateways",
    "MintHealth",
    "NullObserver",
    "RequestOutcome",
    "SeenState",
    "SweepAllowance",
    "normalise_mint_url",
]
