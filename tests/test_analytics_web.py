"""The analytics views on a Faust app (as the worker registers them) and their error mapping."""

from __future__ import annotations

import json
from typing import Any

import faust
import pytest

from sinks.analytics.queries import AnalyticsQueryError
from sinks.analytics.web import ROUTES, dispatch, register_analytics_views
from streams.core.errors import SinkBackpressure


class FakeProvider:
    def __init__(self, fail: Exception | None = None) -> None:
        self.fail = fail
        self.calls: list[tuple[str, tuple[Any, ...]]] = []

    async def _answer(self, name: str, *args: Any) -> dict[str, Any]:
        self.calls.append((name, args))
        if self.fail:
            raise self.fail
        return {"since": "2026-01-01T00:00:00Z", "rows": [{"endpoint": name}]}

    async def hourly(self, since: Any, mint: Any = None, severity: Any = None) -> dict[str, Any]:
        return await self._answer("hourly", since, mint, severity)

    async def blocked(self, since: Any, mint: Any = None) -> dict[str, Any]:
        return await self._answer("blocked", since, mint)

    async def top_types(self, since: Any, limit: Any = None) -> dict[str, Any]:
        return await self._answer("top_types", since, limit)

    async def latency(self, since: Any, mint: Any = None) -> dict[str, Any]:
        return await self._answer("latency", since, mint)

    async def export(self, table: str, since: Any) -> bytes:
        await self._answer("export", table, since)
        return b"PAR1"

    async def report(self, since: Any) -> str:
        await self._answer("report", since)
        return "<html>report</html>"

    def close(self) -> None:
        pass


class FakeRequest:
    def __init__(self, **query: str) -> None:
        self.query = query


@pytest.fixture
def app() -> faust.App:
    return faust.App("analytics-views-test", autodiscover=False, web_enabled=True)


async def test_views_are_registered_on_the_faust_app(app: faust.App) -> None:
    provider = FakeProvider()
    register_analytics_views(app, provider, status=lambda: {"batches": 3})
    for path, _ in ROUTES:
        assert path in app.web.views
    view = app.web.views["/v1/analytics/hourly"]
    response = await view.get(FakeRequest(since="6h", mint="https://m", severity="HIGH"))
    assert response.status == 200
    assert json.loads(response.body)["rows"] == [{"endpoint": "hourly"}]
    assert provider.calls == [("hourly", ("6h", "https://m", "HIGH"))]
    export = app.web.views["/v1/analytics/export/{table}"]
    response = await export.get(FakeRequest(), table="discrepancies")
    assert response.body == b"PAR1" and response.content_type == "application/vnd.apache.parquet"
    report = app.web.views["/report"]
    response = await report.get(FakeRequest(since="7d"))
    assert response.content_type == "text/html" and "report" in response.text
    ping = app.web.views["/v1/analytics/ping"]
    assert json.loads((await ping.get(FakeRequest())).body)["sink"] == {"batches": 3}


async def test_errors_map_to_status_codes() -> None:
    bad = await dispatch(FakeProvider(AnalyticsQueryError("since is wrong")), "hourly", {})
    assert bad.status == 400 and bad.json["error"] == "INVALID_REQUEST"
    down = await dispatch(
        FakeProvider(SinkBackpressure("ClickHouse unavailable", retry_after=1)), "blocked", {}
    )
    assert down.status == 503 and down.json["error"] == "SINK_BACKPRESSURE"
    assert (await dispatch(FakeProvider(), "nope", {})).status == 404
