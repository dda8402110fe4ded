"""The Grafana dashboard: valid JSON on the provisioned datasource, and every panel's SQL runs
against our schema (Grafana's macros replaced the way the ClickHouse plugin expands them)."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from sinks.clickhouse import ClickHouseStore
from sinks.migrate import migrate
from streams.core.settings import Settings

REPO = Path(__file__).resolve().parent.parent
DASHBOARDS = sorted((REPO / "deploy" / "grafana" / "dashboards").glob("*.json"))
DATASOURCE_UID = "proofrecon-clickhouse"


def _expand(sql: str) -> str:
    sql = re.sub(r"\$__timeFilter\((\w+)\)", r"\1 >= now() - INTERVAL 1 DAY", sql)
    sql = sql.replace("${mint:singlequote}", "'https://a.example'")
    return sql.replace("${severity:singlequote}", "'HIGH','MEDIUM','LOW'")


@pytest.fixture
def store(settings: Settings) -> Iterator[ClickHouseStore]:
    s = ClickHouseStore(settings)
    migrate(s, settings)
    try:
        yield s
    finally:
        s.close()


def test_dashboard_panels_query_our_schema(store: ClickHouseStore) -> None:
    assert DASHBOARDS, "no dashboard in deploy/grafana/dashboards"
    titles: list[str] = []
    for path in DASHBOARDS:
        dashboard = json.loads(path.read_text())
        for panel in dashboard["panels"]:
            titles.append(panel["title"])
            assert panel["datasource"]["uid"] == DATASOURCE_UID
            for target in panel["targets"]:
                assert target["datasource"]["uid"] == DATASOURCE_UID
                store.query(_expand(target["rawSql"]))  # raises on a bad query
        for variable in dashboard["templating"]["list"]:
            if variable["type"] == "query":
                store.query(variable["query"])
    joined = " ".join(titles).lower()
    assert "per 1,000 proofs" in joined and "blocked melts" in joined and "latency" in joined
