"""A fixed wait taken out of a worker's start, so a restarted worker (or one whose partitions
moved) answers again sooner.

Faust's TableManager sleeps 1 s when it starts, so that tables declared late (by agents as they
start) are there before it subscribes to their changelogs. This worker declares every table in
its composition root, before anything starts (streams.worker.app), so the second buys nothing.
Faust offers no setting for it, so `on_start` is replaced by the same steps without the sleep
(faust-streaming 0.15.3 is pinned; tests/reliability/test_worker_tuning.py fails if Faust's
method stops being what this relies on).

The other fixed wait of a start, Faust's 1.5 s fetch long-poll that table recovery's offset
lookups queue behind, is shortened by the worker's transport (streams.worker.transport), which
the latency of melt requests needed as well.
"""

from __future__ import annotations

from typing import Any

from faust.tables.manager import TableManager


async def _start_without_pause(self: Any) -> None:
    """TableManager.on_start without its `await self.sleep(1.0)` (see module)."""
    if not self.should_stop:
        await self._update_channels()
        await self.recovery.start()


def skip_table_start_pause() -> None:
    """Before the app is built."""
    manager: Any = TableManager
    manager.on_start = _start_without_pause
