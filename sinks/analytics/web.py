"""Analytics over HTTP: `/v1/analytics/*` (JSON, Parquet) and `/report` (HTML).

In embedded mode the process that runs the ClickHouse sink owns the chDB path, so analyst queries
go through it. The same endpoints are served by the Faust worker (`register_analytics_views`) and
by `proofrecon sink` on its own (`analytics_routes`, plain aiohttp); both call `dispatch`.

    GET /v1/analytics/ping
    GET /v1/analytics/hourly?since=24h&mint=&severity=
    GET /v1/analytics/blocked?since=24h&mint=
    GET /v1/analytics/top-types?since=24h&limit=10
    GET /v1/analytics/latency?since=24h&mint=
    GET /v1/analytics/export/{table}?since=     (Parquet)
    GET /report?since=7d                         (HTML)
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from aiohttp import web as aioweb

from sinks.analytics.queries import ANALYTICS_PREFIX, AnalyticsProvider, AnalyticsQueryError
from streams.core.errors import SinkError

StatusFn = Callable[[], dict[str, Any]]
PARQUET = "application/vnd.apache.parquet"

# (path, endpoint name); `{table}` is a path parameter.
ROUTES: tuple[tuple[str, str], ...] = (
    (f"{ANALYTICS_PREFIX}/ping", "ping"),
    (f"{ANALYTICS_PREFIX}/hourly", "hourly"),
    (f"{ANALYTICS_PREFIX}/blocked", "blocked"),
    (f"{ANALYTICS_PREFIX}/top-types", "top-types"),
    (f"{ANALYTICS_PREFIX}/latency", "latency"),
    (f"{ANALYTICS_PREFIX}/export/{{table}}", "export"),
    ("/report", "report"),
)


@dataclass(frozen=True)
class Reply:
    status: int
    json: Any = None
    text: str | None = None
    data: bytes | None = None
    content_type: str | None = None


async def dispatch(
    provider: AnalyticsProvider,
    endpoint: str,
    query: Mapping[str, str],
    *,
    table: str | None = None,
    status: StatusFn | None = None,
) -> Reply:
    """Answer one analytics request; errors become 400 (bad parameter) or 503 (ClickHouse)."""
    q = query.get
    try:
        if endpoint == "ping":
            return Reply(200, json={"ok": True, "sink": status() if status else None})
        if endpoint == "hourly":
            return Reply(200, json=await provider.hourly(q("since"), q("mint"), q("severity")))
        if endpoint == "blocked":
            return Reply(200, json=await provider.blocked(q("since"), q("mint")))
        if endpoint == "top-types":
            return Reply(200, json=await provider.top_types(q("since"), q("limit")))
        if endpoint == "latency":
            return Reply(200, json=await provider.latency(q("since"), q("mint")))
        if endpoint == "export":
            data = await provider.export(table or "", q("since"))
            return Reply(200, data=data, content_type=PARQUET)
        if endpoint == "report":
            html = await provider.report(q("since"))
            return Reply(200, text=html, content_type="text/html")
    except AnalyticsQueryError as exc:
        return Reply(400, json={"error": exc.code, "message": exc.message})
    except SinkError as exc:
        return Reply(503, json={"error": exc.code, "message": exc.message})
    return Reply(404, json={"error": "NOT_FOUND", "message": endpoint})


# --- Faust -------------------------------------------------------------------------------------


def register_analytics_views(
    app: Any, provider: AnalyticsProvider, *, status: StatusFn | None = None
) -> None:
    """Add the analytics endpoints to a Faust app's web server (call before the app starts)."""
    for path, endpoint in ROUTES:
        app.page(path, name=f"analytics-{endpoint}")(_faust_view(provider, endpoint, status))


def _faust_view(provider: AnalyticsProvider, endpoint: str, status: StatusFn | None) -> Any:
    async def view(self: Any, request: Any, **match: str) -> Any:
        reply = await dispatch(
            provider, endpoint, request.query, table=match.get("table"), status=status
        )
        if reply.data is not None:
            return self.bytes(reply.data, content_type=reply.content_type, status=reply.status)
        if reply.text is not None:
            return self.html(reply.text, status=reply.status)
        return self.json(reply.json, status=reply.status)

    view.__name__ = f"analytics_{endpoint.replace('-', '_')}"
    return view


# --- plain aiohttp (`proofrecon sink`) ---------------------------------------------------------


def analytics_routes(
    provider: AnalyticsProvider, *, status: StatusFn | None = None
) -> list[aioweb.RouteDef]:
    routes = [
        aioweb.get(path, _aiohttp_handler(provider, endpoint, status)) for path, endpoint in ROUTES
    ]
    if status is not None:
        routes.append(aioweb.get("/v1/sink/status", _status_handler(status)))
    return routes


def _aiohttp_handler(
    provider: AnalyticsProvider, endpoint: str, status: StatusFn | None
) -> Callable[[aioweb.Request], Any]:
    async def handler(request: aioweb.Request) -> aioweb.StreamResponse:
        reply = await dispatch(
            provider, endpoint, request.query, table=request.match_info.get("table"), status=status
        )
        if reply.data is not None:
            return aioweb.Response(
                body=reply.data, status=reply.status, content_type=reply.content_type
            )
        if reply.text is not None:
            return aioweb.Response(text=reply.text, status=reply.status, content_type="text/html")
        return aioweb.json_response(reply.json, status=reply.status)

    return handler


def _status_handler(status: StatusFn) -> Callable[[aioweb.Request], Any]:
    async def handler(request: aioweb.Request) -> aioweb.StreamResponse:
        return aioweb.json_response(status())

    return handler
