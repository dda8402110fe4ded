"""`proofrecon worker`: create the topics, build the app, run it until a signal stops it."""

from __future__ import annotations

import asyncio

import faust

from streams.app import create_app
from streams.settings import Settings
from streams.topics import ensure_topics


def run_worker(settings: Settings) -> int:
    asyncio.run(ensure_topics(settings))
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    runtime = create_app(settings)
    worker = faust.Worker(
        runtime.app,
        loglevel=settings.log_level,
        logging_config=dict(runtime.app.conf.logging_config),
        redirect_stdouts=False,
        override_logging=True,
    )
    worker.execute_from_commandline()  # exits the process when the worker stops
    return 0
