"""`proofrecon worker`: create the topics, build the app, run it until a signal stops it."""

from __future__ import annotations

import asyncio
import logging
import logging.config

import faust

from streams.core.kafka import ensure_topics
from streams.core.logs import log, logging_config
from streams.core.settings import Settings
from streams.worker.app import create_app
from streams.worker.fencing import StallFence

logger = logging.getLogger("proofrecon.worker")


def warn_about_canaries(settings: Settings) -> None:
    """A mint that answers UNSPENT for everything (a wrong mint behind the URL, a lost database)
    clears every melt; only a canary — a Y known SPENT there — catches it."""
    for url in settings.mint.allowlist:
        if url not in settings.mint.canaries:
            log(
                logger,
                logging.WARNING,
                "no canary for this mint: a mint answering UNSPENT for every Y would go unnoticed "
                "(set PROOFRECON_MINT_CANARIES)",
                mint_url=url,
            )


def run_worker(settings: Settings) -> int:
    logging.config.dictConfig(logging_config(settings.log_level))
    settings.check_web_exposure()
    warn_about_canaries(settings)
    asyncio.run(ensure_topics(settings))
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    runtime = create_app(settings)
    StallFence.for_settings(settings.kafka).install(runtime.app)
    worker = faust.Worker(
        runtime.app,
        loglevel=settings.log_level,
        logging_config=dict(runtime.app.conf.logging_config),
        redirect_stdouts=False,
        override_logging=True,
    )
    worker.execute_from_commandline()  # exits the process when the worker stops
    return 0
