"""A worker that was frozen past its group session must not speak for partitions it may have lost.

A process can stop without dying: SIGSTOP, a paused VM or container, a host swapping itself to a
halt. Its group session runs out meanwhile and its partitions move to the other workers, which
answer its uncommitted requests and take over its ledger. When it resumes, everything it had in
hand wakes up at once: a melt whose deadline passed while it slept is answered DEADLINE_EXCEEDED
although the new owner already answered it from the mint's truth, the ledger writes a batch to a
changelog partition another worker now owns, the sweep reports on npubs that are no longer its
own. Nothing in Kafka stops that: without transactions, a producer is never fenced (consumer
offset commits are: the coordinator refuses them from an expired member).

So the worker fences itself. A timer notes every quarter second that the event loop is alive;
when the gap since the last note is longer than the session may survive (the session timeout
less one heartbeat interval: the last heartbeat may have left that long before the pause), the
process exits at once with `os._exit`, before any resumed coroutine's output reaches the wire,
and its supervisor starts it again (with static membership it rejoins as itself).

Two paths notice the pause, whichever runs first after it:

- a SIGCONT handler (`signal.signal`, not the event loop's): Python runs it in the main thread at
  the first bytecode after the process is continued, before the loop can resume anything;
- the timer itself, for pauses that send no SIGCONT (a VM paused, a starved host). There, what
  I/O completed during the pause may run before the timer in the loop's first iteration; records
  it hands the producer are sent only in a later iteration, which never comes.

A worker merely slow for as long (the loop blocked by a CPU-bound bug) exits too: it would have
lost its partitions just the same.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import faust

from streams.core.settings import KafkaSettings

TICK_S = 0.25
EXIT_CODE = 75  # EX_TEMPFAIL: start me again


def heartbeat_interval_s(kafka: KafkaSettings) -> float:
    """The consumer's heartbeat interval, as the composition root configures Faust."""
    return min(3.0, kafka.session_timeout_s / 3)


class StallFence:
    """Exits the process after a pause longer than `limit_s` (see module)."""

    def __init__(
        self,
        limit_s: float,
        *,
        clock: Callable[[], float] = time.monotonic,
        exit_process: Callable[[int], Any] = os._exit,
    ) -> None:
        self.limit_s = limit_s
        self._clock = clock
        self._exit = exit_process
        self._last: float | None = None  # armed by the first tick: start-up is no pause

    @classmethod
    def for_settings(cls, kafka: KafkaSettings) -> StallFence:
        return cls(kafka.session_timeout_s - heartbeat_interval_s(kafka))

    def alive(self) -> None:
        """The event loop ran just now."""
        self._last = self._clock()

    def check(self) -> bool:
        """True when the pause since the last sign of life was too long (the process exits)."""
        if self._last is None:
            return False
        paused = self._clock() - self._last
        if paused <= self.limit_s:
            return False
        # Straight to the file descriptor: a signal handler must not wait on logging's locks.
        now = datetime.now(UTC).isoformat(timespec="milliseconds")
        message = (
            f'{{"ts": "{now}", "level": "CRITICAL", "logger": "proofrecon.fencing", "msg": '
            f'"the worker was paused {paused:.1f} s, longer than its group session survives; '
            'exiting before it answers for partitions it may have lost", "exit_code": '
            f"{EXIT_CODE}}}\n"
        )
        os.write(2, message.encode())
        self._exit(EXIT_CODE)
        return True

    def tick(self) -> None:
        self.check()
        self.alive()

    def install(self, app: faust.App) -> None:
        """Check on SIGCONT and on a timer of the app's event loop."""
        signal.signal(signal.SIGCONT, lambda signum, frame: self.check())

        @app.timer(TICK_S, on_leader=False, name="stall-fence")  # type: ignore[untyped-decorator]
        async def stall_fence() -> None:
            self.tick()
