"""A local webhook receiver for alerting tests: records every POST, can be told to fail.

Runs an HTTP server in a thread, so it answers whatever event loop the test is in.

    with AlertReceiver() as receiver:
        receiver.failing = True          # answer 503 until switched back
        ... receiver.url ...             # http://127.0.0.1:<port>
        receiver.alertmanager_alerts()   # every alert of every accepted Alertmanager POST
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any


@dataclass(frozen=True)
class Received:
    path: str
    body: Any
    status: int
    at: float  # time.monotonic()


class AlertReceiver:
    def __init__(self) -> None:
        self.failing = False
        self._received: list[Received] = []
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length)
                status = 503 if receiver.failing else 200
                try:
                    body = json.loads(raw)
                except ValueError:
                    body = None
                with receiver._lock:
                    receiver._received.append(Received(self.path, body, status, time.monotonic()))
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                return None

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def received(self) -> list[Received]:
        with self._lock:
            return list(self._received)

    def alertmanager_alerts(self) -> list[dict[str, Any]]:
        """Every alert of every Alertmanager POST that was answered 200."""
        return [
            alert
            for r in self.received()
            if r.status == 200 and r.path == "/api/v2/alerts" and isinstance(r.body, list)
            for alert in r.body
        ]

    def rejected(self) -> int:
        return sum(r.status != 200 for r in self.received())

    async def wait_for(
        self, predicate: Callable[[list[dict[str, Any]]], bool], timeout: float = 30.0
    ) -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            alerts = self.alertmanager_alerts()
            if predicate(alerts):
                return alerts
            await asyncio.sleep(0.1)
        raise AssertionError(f"receiver: condition not met in {timeout} s: {self.received()}")

    def __enter__(self) -> AlertReceiver:
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._server.shutdown()
        self._server.server_close()
