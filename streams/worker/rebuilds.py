"""The derived indexes a recovery rebuilds besides the proof index: the sweep's, the live watch's.

After every recovery (start, rebalance) the tokens table holds the partitions this worker owns now
and every index derived from it is rebuilt. The proof index is rebuilt before the worker is ready,
because melts are judged with it. The others only decide what to re-check and what to watch, and
with a million proofs they take longer than the worker may take to be ready (each reads every
row), so they run here, in the background, one recovery at a time: a new recovery cancels the
rebuild of the one before. The ledger's consumer keeps them up to date and so waits for `done`
(streams.worker.agents.token_feed), as does the sweep.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence

logger = logging.getLogger("proofrecon.worker")

Hook = Callable[[], Awaitable[None]]


class Rebuilds:
    def __init__(self) -> None:
        self._task: asyncio.Task[None] | None = None
        self.done = asyncio.Event()
        self.done.set()  # nothing to rebuild before the first recovery

    def restart(self, hooks: Sequence[Hook]) -> None:
        """Rebuild with `hooks`, in order, cancelling a rebuild still running."""
        self.close()
        self.done.clear()
        self._task = asyncio.ensure_future(self._run(list(hooks)))

    async def _run(self, hooks: list[Hook]) -> None:
        for hook in hooks:
            try:
                await hook()
            except asyncio.CancelledError:
                raise
            except Exception:  # an index left stale must not hold the ledger back
                logger.exception("rebuilding an index after a recovery failed")
        self.done.set()

    def close(self) -> None:
        if self._task is not None and not self._task.done():
            self._task.cancel()
        self._task = None
