"""`proofrecon sink`: the ClickHouse sink alone, with the analytics endpoints on the web port.

In embedded mode whoever runs the sink owns the chDB path, so this process also answers the
analyst queries (`/v1/analytics/*`, `/report`), exactly as the worker does when the sink runs
inside it. Stops on SIGTERM/SIGINT.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import logging.config
import signal

from aiohttp import web

from sinks.analytics.queries import ClickHouseAnalytics
from sinks.analytics.web import analytics_routes
from sinks.clickhouse import ClickHouseStore
from sinks.service import ClickHouseSinkService
from streams.core.kafka import ensure_topics
from streams.core.logs import log, logging_config
from streams.core.settings import Settings
from streams.core.webauth import auth_middleware

logger = logging.getLogger("proofrecon.sink")


def sink_command(args: argparse.Namespace, settings: Settings) -> int:
    """`proofrecon sink`."""
    return run_sink(settings)


def run_sink(settings: Settings) -> int:
    logging.config.dictConfig(logging_config(settings.log_level))
    settings.check_web_exposure()
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    return asyncio.run(_serve(settings))


async def _serve(settings: Settings) -> int:
    await ensure_topics(settings)
    sink = ClickHouseSinkService(settings)
    # A second client on the same path: analyst queries never wait behind a batch insert.
    analytics = ClickHouseAnalytics(ClickHouseStore(settings, name="clickhouse-analytics"))
    app = web.Application(
        middlewares=[auth_middleware(settings.web)], client_max_size=settings.web.max_body_bytes
    )
    app.add_routes(analytics_routes(analytics, status=lambda: sink.stats.as_dict()))
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, settings.web.host, settings.web.port)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await sink.start()
    await site.start()
    log(
        logger,
        logging.INFO,
        "analytics endpoints serving",
        host=settings.web.host,
        port=settings.web.port,
    )
    # Returns when the service stops or crashes (a task raised something it could not handle).
    ended = asyncio.ensure_future(sink.wait_until_stopped())
    stopping = asyncio.ensure_future(stop.wait())
    await asyncio.wait({ended, stopping}, return_when=asyncio.FIRST_COMPLETED)
    for future in (ended, stopping):
        future.cancel()
    await runner.cleanup()
    await sink.stop()
    analytics.close()
    if sink.crash_reason is not None:
        log(logger, logging.ERROR, "clickhouse sink crashed", error=repr(sink.crash_reason))
        return 1
    return 0
