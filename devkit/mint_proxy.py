"""A fault proxy in front of a real mint: every request is passed through to it, until a fault is
switched on. The mint itself is never touched; the workers are pointed at the proxy's URL.

    proxy = MintProxyProcess("http://127.0.0.1:3338").start()   # its own process
    proxy.set_fault(Fault.DOWN)        # connections refused, open ones reset
    proxy.set_fault(Fault.SLOW, slow_s=10)   # every answer 10 s late (then the mint's own)
    proxy.set_fault(Fault.RATE_LIMIT)  # 429 as Nutshell's limiter answers
    proxy.set_fault(Fault.GARBAGE)     # 200 with answers no mint gives, a new kind each time
    proxy.set_fault(Fault.NONE)
    proxy.status()["windows"]          # when each fault was on (unix seconds)

    python -m devkit.mint_proxy --upstream URL [--port P] [--control-port C]

Faults apply to every path (`/v1/info` too). WebSocket upgrades (NUT-17) are refused: the proxy
carries HTTP only, so a worker watching the mint live sees no watch through it. The control API
(`POST /fault {"fault", "slow_s"}`, `GET /status`) listens on a port of its own, so it answers
while the mint's face is down. It runs in its own process so that the load of the process that
drives a campaign never slows the mint's answers.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import subprocess
import sys
import time
from collections import Counter
from dataclasses import asdict, dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any, Self

import aiohttp
import httpx
from aiohttp import web

from devkit.mints import free_port


class Fault(StrEnum):
    NONE = "none"
    DOWN = "down"
    SLOW = "slow"
    RATE_LIMIT = "rate_limit"
    GARBAGE = "garbage"


class Garbage(StrEnum):
    """What a garbage answer to checkstate is; they take turns."""

    TRUNCATED = "truncated"  # half a JSON document
    HTML = "html"  # a proxy's or a captive portal's page, status 200
    WRONG_SHAPE = "wrong_shape"  # JSON, but not {"states": [...]}
    MISSING_Y = "missing_y"  # one asked Y left out
    UNKNOWN_STATE = "unknown_state"  # a state NUT-07 does not define
    AMNESIA = "amnesia"  # every Y UNSPENT, as a mint that lost its database (only a canary tells)


_HTML = b"<html><head><title>502 Bad Gateway</title></head><body>nginx</body></html>"
_PASSED_HEADERS = ("content-type", "accept")


@dataclass
class FaultWindow:
    fault: str
    started_at: float  # unix seconds
    ended_at: float | None = None
    slow_s: float | None = None


class MintProxy:
    """The proxy itself (one event loop). `MintProxyProcess` runs it in a process of its own."""

    def __init__(self, upstream: str, *, port: int = 0, control_port: int = 0) -> None:
        self.upstream = upstream.rstrip("/")
        self.port = port or free_port()
        self.control_port = control_port or free_port()
        self.fault = Fault.NONE
        self.slow_s = 10.0
        self.windows: list[FaultWindow] = []
        self.answered: Counter[str] = Counter()  # "fault:path" -> requests
        self._garbage = itertools.cycle(list(Garbage))
        self._session: aiohttp.ClientSession | None = None
        self._face: web.AppRunner | None = None
        self._site: web.TCPSite | None = None
        self._control: web.AppRunner | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> Self:
        self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60))
        face = web.Application(client_max_size=8 * 1024 * 1024)
        face.router.add_route("*", "/{path:.*}", self._handle)
        self._face = web.AppRunner(face, access_log=None)
        await self._face.setup()
        await self._listen()
        control = web.Application()
        control.router.add_post("/fault", self._set_fault)
        control.router.add_get("/status", self._status)
        self._control = web.AppRunner(control, access_log=None)
        await self._control.setup()
        await web.TCPSite(self._control, "127.0.0.1", self.control_port).start()
        return self

    async def stop(self) -> None:
        for runner in (self._face, self._control):
            if runner is not None:
                await runner.cleanup()
        if self._session is not None:
            await self._session.close()

    async def _listen(self) -> None:
        assert self._face is not None
        self._site = web.TCPSite(self._face, "127.0.0.1", self.port, reuse_address=True)
        await self._site.start()

    async def switch(self, fault: Fault, slow_s: float | None = None) -> None:
        if slow_s is not None:
            self.slow_s = slow_s
        now = time.time()
        if self.windows and self.windows[-1].ended_at is None:
            self.windows[-1].ended_at = now
        if fault is not Fault.NONE:
            self.windows.append(FaultWindow(fault.value, now, None, self.slow_s))
        was_down, self.fault = self.fault is Fault.DOWN, fault
        if fault is Fault.DOWN and not was_down and self._site is not None:
            await self._site.stop()  # nothing listens: new connections are refused
            self._site = None
        elif was_down and fault is not Fault.DOWN:
            await self._listen()

    # --- the mint's face -------------------------------------------------------------------------

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        fault = self.fault
        self.answered[f"{fault.value}:{request.path}"] += 1
        if request.headers.get("upgrade", "").lower() == "websocket":
            return web.json_response({"detail": "no WebSocket through this proxy"}, status=404)
        if fault is Fault.DOWN:
            # A keep-alive connection opened before the fault: drop it, as a dead host would.
            if request.transport is not None:
                request.transport.close()
            raise asyncio.CancelledError
        if fault is Fault.RATE_LIMIT:
            return web.json_response({"detail": "Rate limit exceeded."}, status=429)
        if fault is Fault.SLOW:
            await asyncio.sleep(self.slow_s)
        body = await request.read()
        if fault is Fault.GARBAGE:
            return self._garbage_answer(request.path, body)
        return await self._forward(request, body)

    async def _forward(self, request: web.Request, body: bytes) -> web.Response:
        assert self._session is not None
        headers = {k: v for k, v in request.headers.items() if k.lower() in _PASSED_HEADERS}
        try:
            async with self._session.request(
                request.method, f"{self.upstream}{request.rel_url}", data=body, headers=headers
            ) as upstream:
                payload = await upstream.read()
                kind = upstream.headers.get("content-type", "application/json")
                return web.Response(
                    body=payload,
                    status=upstream.status,
                    content_type=None,
                    headers={"content-type": kind},
                )
        except aiohttp.ClientError:
            return web.Response(body=_HTML, status=502, content_type="text/html")

    def _garbage_answer(self, path: str, body: bytes) -> web.Response:
        if not path.endswith("/checkstate"):
            return web.Response(body=_HTML, status=200, content_type="text/html")
        try:
            ys = [str(y) for y in json.loads(body)["Ys"]]
        except (ValueError, KeyError, TypeError):
            ys = []
        states = [{"Y": y, "state": "UNSPENT", "witness": None} for y in ys]
        kind = next(self._garbage)
        if kind is Garbage.TRUNCATED:
            text = json.dumps({"states": states})
            return web.Response(text=text[: len(text) // 2], content_type="application/json")
        if kind is Garbage.HTML:
            return web.Response(body=_HTML, status=200, content_type="text/html")
        if kind is Garbage.WRONG_SHAPE:
            return web.json_response({"result": states})
        if kind is Garbage.MISSING_Y:
            return web.json_response({"states": states[:-1]})
        if kind is Garbage.UNKNOWN_STATE and states:
            states[0]["state"] = "BURNT"
        return web.json_response({"states": states})  # AMNESIA (and an empty UNKNOWN_STATE)

    # --- control ---------------------------------------------------------------------------------

    async def _set_fault(self, request: web.Request) -> web.Response:
        body = await request.json()
        await self.switch(Fault(body["fault"]), body.get("slow_s"))
        return web.json_response({"fault": self.fault.value})

    async def _status(self, request: web.Request) -> web.Response:
        return web.json_response(self.snapshot())

    def snapshot(self) -> dict[str, Any]:
        return {
            "fault": self.fault.value,
            "upstream": self.upstream,
            "windows": [asdict(w) for w in self.windows],
            "answered": dict(self.answered),
        }


class MintProxyProcess:
    """`python -m devkit.mint_proxy` as a child process, controlled over its control port."""

    def __init__(self, upstream: str, log_path: Path | None = None) -> None:
        self.upstream = upstream
        self.port = free_port()
        self.control_port = free_port()
        self.log_path = log_path
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def control_url(self) -> str:
        return f"http://127.0.0.1:{self.control_port}"

    def start(self, timeout: float = 30.0) -> Self:
        argv = [sys.executable, "-m", "devkit.mint_proxy", "--upstream", self.upstream]
        argv += ["--port", str(self.port), "--control-port", str(self.control_port)]
        log = self.log_path.open("ab") if self.log_path else subprocess.DEVNULL
        # Our own module with arguments built here.
        self.proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT)  # noqa: S603
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                self.status()
                return self
            except httpx.HTTPError:
                time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"the mint proxy did not start within {timeout} s")

    def set_fault(self, fault: Fault, slow_s: float | None = None) -> None:
        body: dict[str, Any] = {"fault": fault.value}
        if slow_s is not None:
            body["slow_s"] = slow_s
        httpx.post(f"{self.control_url}/fault", json=body, timeout=10).raise_for_status()

    def status(self) -> dict[str, Any]:
        response = httpx.get(f"{self.control_url}/status", timeout=10)
        response.raise_for_status()
        return dict(response.json())

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


async def _serve(args: argparse.Namespace) -> None:
    proxy = await MintProxy(args.upstream, port=args.port, control_port=args.control_port).start()
    print(f"mint proxy {proxy.url} -> {proxy.upstream}, control :{proxy.control_port}", flush=True)
    try:
        await asyncio.Event().wait()
    finally:
        await proxy.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--upstream", required=True, help="the mint's URL")
    parser.add_argument("--port", type=int, default=0, help="the mint face's port (default: free)")
    parser.add_argument("--control-port", type=int, default=0, help="the control API's port")
    args = parser.parse_args(argv)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_serve(args))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
