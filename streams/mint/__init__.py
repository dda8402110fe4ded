"""Talking to mints: one paced, coalescing, validating NUT-07 gateway per allow-listed mint URL,
and a live NUT-17 proof-state watch per mint that advertises it (WatchManager)."""

from streams.mint.cache import SeenState
from streams.mint.gateway import MintGateway
from streams.mint.live import LiveState, LiveStates, Via
from streams.mint.nut17 import supports_proof_state
from streams.mint.observer import (
    GatewayObserver,
    HealthListener,
    MintHealth,
    NullObserver,
    RequestOutcome,
)
from streams.mint.pacing import SweepAllowance
from streams.mint.registry import MintGateways
from streams.mint.watch import StateCallback, WatchManager
from streams.mint.watchconfig import NullWatchObserver, WatchConfig, WatchObserver
from streams.mint.watchplan import Tier
from streams.mint.watchsnap import Snapshot

__all__ = [
    "GatewayObserver",
    "HealthListener",
    "LiveState",
    "LiveStates",
    "MintGateway",
    "MintGateways",
    "MintHealth",
    "NullObserver",
    "NullWatchObserver",
    "RequestOutcome",
    "SeenState",
    "Snapshot",
    "StateCallback",
    "SweepAllowance",
    "Tier",
    "Via",
    "WatchConfig",
    "WatchManager",
    "WatchObserver",
    "supports_proof_state",
]
