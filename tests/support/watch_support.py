"""Helpers for the NUT-17 watch tests: an observer that counts, and a recorder of on_state.

(`Spender`, which spends proofs behind a wallet's back on command, lives in devkit.spending.)
"""

from __future__ import annotations

import asyncio
import os
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from devkit.spending import Spend, Spender
from devkit.wallet import CashuWallet, WalletProof
from streams.core.cashu import y_from_secret
from streams.core.domain import MintState
from streams.mint.live import Via


class CountingObserver:
    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()
        self.gauge: dict[str, int] = {}

    def gauges(self, mint_url: str, *, wanted: int, watched: int, connections: int) -> None:
        self.gauge = {"wanted": wanted, "watched": watched, "connections": connections}

    def message_sent(self, mint_url: str, *, kind: str) -> None:
        self.counts[f"sent:{kind}"] += 1
        self.counts["sent"] += 1

    def notification(self, mint_url: str, *, state: MintState) -> None:
        self.counts[f"notification:{state}"] += 1

    def reconnect(self, mint_url: str, *, reason: str) -> None:
        self.counts[f"reconnect:{reason}"] += 1

    def snapshot(self, mint_url: str, *, ys: int, outcome: str) -> None:
        self.counts[f"snapshot:{outcome}"] += 1

    def rejected(self, mint_url: str, *, reason: str) -> None:
        self.counts[f"rejected:{reason}"] += 1
        self.counts["rejected"] += 1


@dataclass(frozen=True)
class Learned:
    y: str
    state: MintState
    at: datetime
    via: Via
    mono: float  # loop time when reported


class Recorder:
    """on_state for tests: records everything, and lets a test wait for a given state."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.seen: list[Learned] = []
        self._clock = clock
        self._event = asyncio.Event()

    def __call__(self, y: str, state: MintState, at: datetime, via: Via) -> None:
        self.seen.append(Learned(y, state, at, via, self._clock()))
        self._event.set()

    def of(self, y: str) -> list[Learned]:
        return [s for s in self.seen if s.y == y]

    def last(self, y: str) -> MintState | None:
        found = self.of(y)
        return found[-1].state if found else None

    async def wait_for(self, y: str, state: MintState, timeout: float) -> Learned:
        async with asyncio.timeout(timeout):
            while True:
                for learned in self.of(y):
                    if learned.state is state:
                        return learned
                self._event.clear()
                await self._event.wait()


class StatesSnapshot:
    """A snapshot callable answering from a dict (the fake mint's states), counting calls."""

    def __init__(self, states: Mapping[str, MintState]) -> None:
        self.states = states
        self.calls: list[list[str]] = []
        self.fail: Exception | None = None

    async def __call__(self, ys: list[str]) -> dict[str, MintState]:
        self.calls.append(list(ys))
        if self.fail is not None:
            raise self.fail
        return {y: self.states.get(y, MintState.UNSPENT) for y in ys}

    @property
    def ys(self) -> int:
        return sum(len(c) for c in self.calls)


def random_ys(n: int) -> list[str]:
    return [y_from_secret(os.urandom(16).hex()) for _ in range(n)]


class WatchWallet(CashuWallet):
    def melt(self, proofs: Sequence[WalletProof]) -> None:
        """Melt `proofs`; returns once the mint shows them PENDING (needs a PENDING backend)."""
        self._with_input("melt-pending", proofs)


__all__ = [
    "CountingObserver",
    "Learned",
    "Recorder",
    "Spend",
    "Spender",
    "StatesSnapshot",
    "WatchWallet",
    "random_ys",
]
