"""A shorter long-poll for Faust's consumer, so a restarted worker recovers in a blink.

Faust's aiokafka driver creates the worker's consumer with `fetch_max_wait_ms=1500`, hard-coded.
A broker answers the requests of one connection strictly in order, so every offset lookup that
table recovery makes (highwaters, earliest offsets, seeks for actives, then for standbys) waits
behind a fetch that has nothing to return: up to 1.5 s each, about 6 s in all on every start and
every rebalance of a worker that is not flooded with records. Measured with 3 workers on the
3-node cluster: a worker restarted after kill -9 was ready 10.8 s after its start, 6.1 s of it in
those four waits (0.4 s with this change).

The price of a shorter poll is idle fetches: at most 1000 / FETCH_MAX_WAIT_MS requests per second
to each broker the worker reads from, which a broker serves from memory.

Faust offers no setting for it, so the driver's consumer factory is wrapped (faust-streaming
0.15.3 and aiokafka 0.14 are pinned; tests/reliability/test_worker_tuning.py fails if either
stops honouring it).
"""

from __future__ import annotations

from typing import Any

from faust.transport.drivers import aiokafka as faust_aiokafka

FETCH_MAX_WAIT_MS = 200
_MARK = "_proofrecon_fetch_max_wait_ms"


def shorten_fetch_wait(wait_ms: int = FETCH_MAX_WAIT_MS) -> None:
    """Make every worker consumer Faust creates from now on long-poll at most `wait_ms`."""
    thread: Any = faust_aiokafka.AIOKafkaConsumerThread
    if getattr(thread, _MARK, None) is not None:
        setattr(thread, _MARK, wait_ms)
        return
    create = thread._create_worker_consumer

    def create_worker_consumer(self: Any, transport: Any) -> Any:
        consumer = create(self, transport)
        # Read by AIOKafkaConsumer.start() when it builds its fetcher.
        consumer._fetch_max_wait_ms = getattr(thread, _MARK)
        return consumer

    setattr(thread, _MARK, wait_ms)
    thread._create_worker_consumer = create_worker_consumer
