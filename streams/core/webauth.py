"""Bearer-token auth for the web API, as an aiohttp middleware (the worker's and the sink's).

Closed by default: the web API binds 127.0.0.1, and a process bound anywhere else refuses to start
without `PROOFRECON_WEB_AUTH_TOKEN` (Settings.check_web_exposure). With a token, every endpoint
asks for `Authorization: Bearer <token>` except the probes an orchestrator needs (`/healthz`,
`/readyz`) and, if `metrics_public`, `/metrics`. Bodies larger than `max_body_bytes` are refused
before they are read.
"""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable

from aiohttp import web

from streams.core.settings import WebSettings

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
OPEN_PATHS = frozenset({"/healthz", "/readyz"})


def auth_middleware(settings: WebSettings) -> Callable[..., Awaitable[web.StreamResponse]]:
    token = settings.auth_token.get_secret_value() if settings.auth_token else None
    expected = f"Bearer {token}".encode() if token else b""
    open_paths = OPEN_PATHS | ({"/metrics"} if settings.metrics_public else set())

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        length = request.content_length
        if length is not None and length > settings.max_body_bytes:
            return _error(413, "BODY_TOO_LARGE", f"at most {settings.max_body_bytes} bytes")
        if token is None or request.path in open_paths:
            return await handler(request)
        given = request.headers.get("Authorization", "").encode()
        if not hmac.compare_digest(given, expected):
            response = _error(401, "UNAUTHORIZED", "a bearer token is needed")
            response.headers["WWW-Authenticate"] = 'Bearer realm="proofrecon"'
            return response
        return await handler(request)

    return middleware


def _error(status: int, code: str, message: str) -> web.Response:
    return web.json_response({"error": code, "message": message}, status=status)
