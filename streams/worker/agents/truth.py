"""Where a melt's mint states come from: the mint asked now (NUT-07 checkstate through the
gateway), or the live watch's fresh state (NUT-17), by `PROOFRECON_PREFLIGHT_LIVE_STATE`:

- `fallback` (default): ask the mint; only when it cannot be asked in time (the request budget is
  spent, it is silent after a 429, its circuit is open, it cannot answer before the deadline),
  the deadline has not passed yet and every proof's live state is fresh, answer from that
  instead of blocking;
- `prefer`: answer from fresh live states, and ask the mint only for the proofs without one;
- `never`: the mint only.

Fresh means known truth: watched on a connection that is alive, and confirmed within
`PROOFRECON_WATCH_FRESH_MAX_AGE_S`. Anything else is unknown, and unknown truth never clears.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

from streams.core.domain import BlockCode, MintState, Source, Truth
from streams.core.errors import MintDeadlineExceeded, MintError, MintNotAllowed
from streams.worker.runtime import Runtime

States = dict[str, MintState]
# The mint could not be asked in time: the live state may stand in for it.
_STAND_IN_FOR = (BlockCode.MINT_UNAVAILABLE, BlockCode.DEADLINE_EXCEEDED)


class MintTruth:
    def __init__(self, runtime: Runtime) -> None:
        self._rt = runtime

    async def states(
        self, mint_url: str, ys: Sequence[str], deadline_s: float
    ) -> tuple[States, Truth] | BlockCode:
        """Every Y's state and where it came from, or why it cannot be had (fail closed)."""
        policy = self._rt.settings.preflight.live_state
        expires = time.monotonic() + deadline_s
        live = self._fresh(mint_url, ys) if policy != "never" else {}
        if policy == "prefer" and live:
            missing = [y for y in ys if y not in live]
            if not missing:
                return live, Truth.LIVE
            asked = await self._ask(mint_url, missing, deadline_s)
            return asked if isinstance(asked, BlockCode) else ({**live, **asked}, Truth.MIXED)
        asked = await self._ask(mint_url, ys, deadline_s)
        if not isinstance(asked, BlockCode):
            return asked, Truth.CHECKSTATE
        # The live state stands in only while the melt is still awaited: an answer after its
        # deadline is DEADLINE_EXCEEDED whatever it would have said (the client has given up).
        in_time = time.monotonic() < expires
        if asked in _STAND_IN_FOR and in_time and len(live) == len(set(ys)):
            return live, Truth.LIVE
        return asked

    def _fresh(self, mint_url: str, ys: Sequence[str]) -> States:
        return self._rt.live.fresh_states(mint_url, ys) if self._rt.live is not None else {}

    async def _ask(self, mint_url: str, ys: Sequence[str], deadline_s: float) -> States | BlockCode:
        try:
            gateway = self._rt.gateways.get(mint_url)
            return await gateway.check(ys, deadline_s=deadline_s, source=Source.PREFLIGHT)
        except MintNotAllowed:
            return BlockCode.INVALID_REQUEST
        except MintDeadlineExceeded:
            return BlockCode.DEADLINE_EXCEEDED
        except MintError:
            return BlockCode.MINT_UNAVAILABLE
