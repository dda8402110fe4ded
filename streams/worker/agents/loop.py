"""The one agent loop every input agent runs (but the melt-requests one, which batches)."""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Awaitable, Callable

from pydantic import ValidationError

from streams.core.domain import ErrorKind
from streams.core.errors import DeliveryFailed, StoreError
from streams.core.logs import log
from streams.worker.events import RawEvent, RawStream
from streams.worker.runtime import Runtime

logger = logging.getLogger("proofrecon.agents")

_EXIT_GRACE_S = 30.0
_EXIT_CODE = 70  # EX_SOFTWARE
# Not the input's fault: retried where they happen, then the worker stops without acking.
TRANSIENT = (DeliveryFailed, StoreError)


async def run_guarded(
    runtime: Runtime, stream: RawStream, handle: Callable[[RawEvent], Awaitable[None]], what: str
) -> None:
    """The one agent loop: each event handled; a transient failure stops the worker before the
    event's offset is committed; anything else is parked on the dead-letter topic (a bug must not
    stop a partition: review finding 1) and the loop goes on."""
    emit = runtime.emit
    async for event in stream.events():
        try:
            await handle(event)
        except TRANSIENT as exc:
            log(logger, logging.ERROR, f"{what}: stopping the worker", error=exc.code)
            await stop_worker(runtime, exc)
            return
        except Exception as exc:
            logger.error("%s could not handle an event", what, exc_info=_traceback(exc))
            await emit.dead_letter(event, ErrorKind.PROCESSING_ERROR, type(exc).__name__)


async def stop_worker(runtime: Runtime, exc: BaseException) -> None:
    """Stop the worker before anything unacknowledged is committed, and make sure it does stop:
    a supervisor restarts a process that exits, never one that hangs half-stopped."""
    asyncio.get_running_loop().call_later(_EXIT_GRACE_S, os._exit, _EXIT_CODE)
    await runtime.app.crash(exc)


def _traceback(exc: BaseException) -> BaseException | None:
    # A pydantic error's text quotes its input: name it, never print it.
    return None if isinstance(exc, ValidationError) else exc
