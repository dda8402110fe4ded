"""Which proofs the sweep re-checks next: per mint, oldest check first. Pure and in memory."""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Iterable


class SweepIndex:
    """Per mint, the sweepable proofs ordered by their last check (never checked first).

    In memory, built from the tokens table after every recovery and kept up to date by the
    token-status agent, so losing it costs only some re-checks. An OrderedDict keeps "oldest
    check first" at O(1) per update.
    """

    def __init__(self) -> None:
        self._by_mint: dict[str, OrderedDict[tuple[str, str], float]] = {}
        self._mint_of: dict[tuple[str, str], str] = {}

    def __len__(self) -> int:
        return len(self._mint_of)

    def track(self, npub: str, y: str, mint_url: str) -> None:
        key = (npub, y)
        if self._mint_of.get(key) == mint_url:
            return
        self.forget(npub, y)
        queue = self._by_mint.get(mint_url)
        if queue is None:  # not setdefault: that builds an OrderedDict for every call
            queue = self._by_mint[mint_url] = OrderedDict()
        queue[key] = 0.0
        queue.move_to_end(key, last=False)
        self._mint_of[key] = mint_url

    def forget(self, npub: str, y: str) -> None:
        mint_url = self._mint_of.pop((npub, y), None)
        if mint_url is not None:
            self._by_mint[mint_url].pop((npub, y), None)

    def checked(self, npub: str, ys: Iterable[str], at: float | None = None) -> None:
        now = time.monotonic() if at is None else at
        for y in ys:
            mint_url = self._mint_of.get((npub, y))
            if mint_url is not None:
                queue = self._by_mint[mint_url]
                queue[(npub, y)] = now
                queue.move_to_end((npub, y))

    def due(
        self, mint_url: str, limit: int, min_age_s: float, now: float | None = None
    ) -> list[tuple[str, str]]:
        """Up to `limit` proofs of `mint_url` last checked at least `min_age_s` ago."""
        now = time.monotonic() if now is None else now
        picked: list[tuple[str, str]] = []
        for key, last in self._by_mint.get(mint_url, {}).items():
            if len(picked) >= limit or (last and now - last < min_age_s):
                break
            picked.append(key)
        return picked

    def replace(self, entries: Iterable[tuple[str, str, str]]) -> None:
        """Hold exactly `entries` (npub, Y, mint_url), keeping the last checks already known."""
        last_checks = {key: last for queue in self._by_mint.values() for key, last in queue.items()}
        self._by_mint, self._mint_of = {}, {}
        for npub, y, mint_url in entries:
            self.track(npub, y, mint_url)
        for key, last in sorted(last_checks.items(), key=lambda item: item[1]):
            if last and key in self._mint_of:
                self.checked(key[0], [key[1]], at=last)

    def mints(self) -> list[str]:
        return [mint for mint, queue in self._by_mint.items() if queue]
