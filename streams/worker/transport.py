"""The Faust transport the worker uses: Faust's aiokafka transport with a short fetch wait.

Faust builds its consumer with `fetch_max_wait_ms=1500`, fixed (no setting reaches it). aiokafka
leaves a partition out of the next fetch while its records are still being handed to the agents,
and that fetch then waits on the broker for up to `fetch_max_wait_ms` for the other partitions:
a melt request arriving meanwhile on the partition left out waits for that fetch to come back.
At 50 melts/s that cost ~10 ms at the median and far more at the tail (up to the 1.5 s at lower
rates). A short wait bounds it; the price is an idle worker's empty fetches (one per wait).

It also speeds up every start and rebalance: a broker answers one connection's requests in
order, so each offset lookup of table recovery (highwaters, earliest offsets, seeks for actives,
then standbys) waited behind a fetch with nothing to return, up to 1.5 s each (measured with 3
workers on the 3-node cluster: a worker restarted after kill -9 ready 10.8 s after its start,
6.1 s of it in those waits).

Faust's other fixed wait at a start, the table manager's 1 s before it subscribes to the
changelogs, is kept: without it, on the 3-node cluster an agent wrote a table before its new
changelog's metadata was known (PartitionsMismatch: "the changelog has 0 partitions").
"""

from __future__ import annotations

from typing import Any

import faust
from faust.transport.drivers import aiokafka as faust_aiokafka

FETCH_MAX_WAIT_MS = 10


class _ConsumerThread(faust_aiokafka.AIOKafkaConsumerThread):
    def _create_worker_consumer(self, transport: Any) -> Any:
        consumer = super()._create_worker_consumer(transport)
        # Read by AIOKafkaConsumer.start() when it builds its fetcher: set before that.
        consumer._fetch_max_wait_ms = FETCH_MAX_WAIT_MS
        return consumer


class _Consumer(faust_aiokafka.Consumer):
    def _new_consumer_thread(self) -> _ConsumerThread:
        return _ConsumerThread(self, loop=self.loop, beacon=self.beacon)


class _Transport(faust_aiokafka.Transport):
    Consumer = _Consumer


def use_low_latency_transport(app: faust.App) -> None:
    """Give `app` the transport above. Before anything asks for `app.transport` (its topics)."""
    app.transport = _Transport(app.conf.broker_consumer, app)
