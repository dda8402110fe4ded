"""A small local mint impostor whose /v1/checkstate misbehaves on cue, and counts what it is asked.

Honest by default: it answers every requested Y in order from `states` (UNSPENT for the unknown,
like a real mint). `script(...)` queues faults consumed one per checkstate request; when the queue
is empty, `default` applies. `max_ys` makes requests above N Ys fail as "too long" in the style
of a given implementation, before any scripted fault.

    async with FaultMint() as mint:
        mint.script(Fault.RATE_LIMIT)
        ...
        assert len(mint.checkstate_requests) == 1
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections import deque
from enum import StrEnum
from typing import Any

from aiohttp import web

from devkit.local_http import LocalServer
from streams.core.domain import MintState


class Fault(StrEnum):
    OK = "ok"
    RATE_LIMIT = "rate_limit"  # 429, body like Nutshell's slowapi handler
    SERVER_ERROR = "server_error"  # 500 with a JSON body
    HTML_ERROR = "html_error"  # 502 with a proxy's HTML error page
    HTML_200 = "html_200"  # 200 with an HTML page (a captive portal, a misrouted host)
    MALFORMED_JSON = "malformed_json"  # 200, truncated JSON
    MISSING_Y = "missing_y"  # one requested Y left out
    EXTRA_Y = "extra_y"  # one Y nobody asked for added
    DUPLICATE_Y = "duplicate_y"  # one requested Y answered twice (and the count still matches)
    UNKNOWN_STATE = "unknown_state"  # a state NUT-07 does not define
    STALL = "stall"  # wait `stall_s`, then answer honestly
    TOO_LONG_11014 = "too_long_11014"  # 400 {"detail", "code": 11014}, as CDK answers
    RESET = "reset"  # close the connection without answering
    WRONG_SHAPE = "wrong_shape"  # 200 with JSON that is not {"states": [...]}


class TooLongStyle(StrEnum):
    NUTSHELL = "nutshell"  # 422, FastAPI/pydantic detail with type "too_long"
    CDK = "cdk"  # 400 with Cashu error code 11014
    PROXY_413 = "proxy_413"  # 413 with an HTML page
    HTML_400 = "html_400"  # 400 with a non-JSON page


_HTML = b"<html><head><title>502 Bad Gateway</title></head><body>nginx</body></html>"


class FaultMint(LocalServer):
    def __init__(self) -> None:
        super().__init__()
        self.states: dict[str, MintState] = {}
        self.default: Fault = Fault.OK
        self.max_ys: int | None = None
        self.too_long_style: TooLongStyle = TooLongStyle.NUTSHELL
        self.stall_s: float = 10.0
        self.delay_s: float = 0.0  # added before every checkstate answer (a slow mint)
        self.info: dict[str, Any] = {"name": "fault mint", "version": "test", "nuts": {}}
        self.checkstate_requests: list[list[str]] = []
        self.info_requests = 0
        self.headers_seen: list[dict[str, str]] = []  # of every request, in arrival order
        self._script: deque[Fault] = deque()
        self._release = asyncio.Event()

    # --- control -----------------------------------------------------------------------------

    def script(self, *faults: Fault) -> None:
        self._script.extend(faults)

    @property
    def request_count(self) -> int:
        return len(self.checkstate_requests)

    @property
    def ys_requested(self) -> list[str]:
        return [y for request in self.checkstate_requests for y in request]

    def routes(self, app: web.Application) -> None:
        app.router.add_post("/v1/checkstate", self._checkstate)
        app.router.add_get("/v1/info", self._info)

    async def stop(self) -> None:
        self._release.set()  # end stalls at once
        await super().stop()

    # --- handlers ----------------------------------------------------------------------------

    async def _info(self, request: web.Request) -> web.StreamResponse:
        self.info_requests += 1
        self.headers_seen.append(dict(request.headers))
        return web.json_response(self.info)

    async def _checkstate(self, request: web.Request) -> web.StreamResponse:
        payload = await request.json()
        ys: list[str] = list(payload["Ys"])
        self.checkstate_requests.append(ys)
        self.headers_seen.append(dict(request.headers))
        if self.delay_s:
            await asyncio.sleep(self.delay_s)
        if self.max_ys is not None and len(ys) > self.max_ys:
            return self._too_long(len(ys))
        fault = self._script.popleft() if self._script else self.default
        return await self._answer(fault, ys, request)

    async def _answer(
        self, fault: Fault, ys: list[str], request: web.Request
    ) -> web.StreamResponse:
        honest = [self._entry(y) for y in ys]
        if fault is Fault.OK:
            return web.json_response({"states": honest})
        if fault is Fault.RATE_LIMIT:
            return web.json_response({"detail": "Rate limit exceeded."}, status=429)
        if fault is Fault.SERVER_ERROR:
            return web.json_response({"detail": "internal error"}, status=500)
        if fault is Fault.HTML_ERROR:
            return web.Response(body=_HTML, status=502, content_type="text/html")
        if fault is Fault.HTML_200:
            return web.Response(body=_HTML, status=200, content_type="text/html")
        if fault is Fault.MALFORMED_JSON:
            text = json.dumps({"states": honest})
            return web.Response(text=text[: len(text) // 2], content_type="application/json")
        if fault is Fault.WRONG_SHAPE:
            return web.json_response({"result": honest})
        if fault is Fault.MISSING_Y:
            return web.json_response({"states": honest[:-1]})
        if fault is Fault.EXTRA_Y:
            extra = {"Y": "02" + "ee" * 32, "state": "UNSPENT", "witness": None}
            return web.json_response({"states": [*honest, extra]})
        if fault is Fault.DUPLICATE_Y:
            # Same length as asked, so only a check for duplicates catches it.
            duplicated = [*honest[:-1], honest[0]] if len(honest) > 1 else [*honest, honest[0]]
            return web.json_response({"states": duplicated})
        if fault is Fault.UNKNOWN_STATE:
            return web.json_response({"states": [{**honest[0], "state": "BURNT"}, *honest[1:]]})
        if fault is Fault.STALL:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._release.wait(), timeout=self.stall_s)
            return web.json_response({"states": honest})
        if fault is Fault.TOO_LONG_11014:
            return web.json_response({"detail": "too many inputs", "code": 11014}, status=400)
        if fault is Fault.RESET:
            if request.transport is not None:
                request.transport.close()
            raise asyncio.CancelledError  # aiohttp drops the connection without a response
        raise AssertionError(f"unhandled fault {fault}")

    def _entry(self, y: str) -> dict[str, Any]:
        return {"Y": y, "state": self.states.get(y, MintState.UNSPENT).value, "witness": None}

    def _too_long(self, n: int) -> web.StreamResponse:
        style = self.too_long_style
        if style is TooLongStyle.NUTSHELL:
            detail = [
                {
                    "type": "too_long",
                    "loc": ["body", "Ys"],
                    "msg": f"List should have at most {self.max_ys} items, not {n}",
                }
            ]
            return web.json_response({"detail": detail}, status=422)
        if style is TooLongStyle.CDK:
            return web.json_response({"detail": "too many inputs", "code": 11014}, status=400)
        if style is TooLongStyle.PROXY_413:
            return web.Response(body=b"<html>413 Request Entity Too Large</html>", status=413)
        return web.Response(body=b"<html>Bad Request</html>", status=400, content_type="text/html")
