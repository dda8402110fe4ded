"""The analytics report: one self-contained HTML page with inline SVG charts (pure).

No script and no external resource: the page renders the same offline, in a mail attachment, or in
a locked-down browser. Every value shown comes from the analytics documents, escaped.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from datetime import datetime
from html import escape
from typing import Any

SEVERITY_COLORS = {"HIGH": "#c62828", "MEDIUM": "#ef6c00", "LOW": "#607d8b"}
CODE_COLORS = {
    "high_severity": "#c62828",
    "proof_spent": "#ef6c00",
    "proof_pending": "#8d6e63",
    "unresolved": "#2e7d32",
    "mint_mismatch": "#283593",
    "mint_unavailable": "#6a1b9a",
    "invalid_request": "#00838f",
    "deadline_exceeded": "#f9a825",
}
LATENCY_COLORS = {"p50_ms": "#1565c0", "p99_ms": "#ad1457"}
W, H = 720, 240
PAD_L, PAD_R, PAD_T, PAD_B = 56, 16, 28, 40

Point = tuple[float, float]


def _hour_x(hours: Sequence[str]) -> dict[str, float]:
    """x positions for the hours (ISO strings sort in time order): the centre of each slot."""
    slot = (W - PAD_L - PAD_R) / len(hours)
    return {h: PAD_L + slot * (i + 0.5) for i, h in enumerate(hours)}


def _y(value: float, top: float) -> float:
    return float(PAD_T + (H - PAD_T - PAD_B) * (1 - (value / top if top else 0)))


def _nice_top(value: float) -> float:
    if value <= 0:
        return 1.0
    magnitude = 10.0 ** (len(str(int(value))) - 1)
    for step in (1, 2, 2.5, 5, 10):
        if value <= step * magnitude:
            return step * magnitude
    return value


def _axes(hours: Sequence[str], xs: dict[str, float], top: float, unit: str) -> list[str]:
    parts = [
        f'<line class="axis" x1="{PAD_L}" y1="{H - PAD_B}" x2="{W - PAD_R}" y2="{H - PAD_B}"/>'
    ]
    for i in range(5):
        value = top * i / 4
        y = _y(value, top)
        parts.append(
            f'<line class="grid" x1="{PAD_L}" y1="{y:.1f}" x2="{W - PAD_R}" y2="{y:.1f}"/>'
        )
        parts.append(
            f'<text class="tick" x="{PAD_L - 6}" y="{y + 4:.1f}" text-anchor="end">{value:g}</text>'
        )
    every = max(1, len(hours) // 8)
    for i, hour in enumerate(hours):
        if i % every == 0:
            label = escape(hour[5:16].replace("T", " "))
            parts.append(
                f'<text class="tick" x="{xs[hour]:.1f}" y="{H - PAD_B + 16}" '
                f'text-anchor="middle">{label}</text>'
            )
    parts.append(f'<text class="unit" x="8" y="14">{escape(unit)}</text>')
    return parts


def _svg(title: str, body: Iterable[str], legend: dict[str, str]) -> str:
    keys = "".join(
        f'<span class="key"><i style="background:{color}"></i>{escape(name)}</span>'
        for name, color in legend.items()
    )
    return (
        f'<figure class="chart"><figcaption>{escape(title)}</figcaption>'
        f'<svg class="chart-svg" viewBox="0 0 {W} {H}" role="img" aria-label="{escape(title)}">'
        + "".join(body)
        + f'</svg><div class="legend">{keys}</div></figure>'
    )


def _empty(title: str) -> str:
    return (
        f'<figure class="chart empty"><figcaption>{escape(title)}</figcaption>'
        '<p class="none">No data in this window.</p></figure>'
    )


def line_chart(
    title: str, series: dict[str, dict[str, float]], colors: dict[str, str], unit: str
) -> str:
    """Lines over hours: `series[name][hour] = value`."""
    hours = sorted({h for values in series.values() for h in values})
    if not hours:
        return _empty(title)
    xs = _hour_x(hours)
    top = _nice_top(max(v for values in series.values() for v in values.values()))
    body = _axes(hours, xs, top, unit)
    for name, values in series.items():
        color = colors.get(name, "#333")
        points = [(xs[h], _y(values[h], top)) for h in hours if h in values]
        path = " ".join(f"{x:.1f},{y:.1f}" for x, y in points)
        body.append(
            f'<polyline class="series" data-series="{escape(name)}" fill="none" '
            f'stroke="{color}" stroke-width="2" points="{path}"/>'
        )
        for (x, y), hour in zip(points, [h for h in hours if h in values], strict=True):
            tip = f"{escape(name)} {escape(hour)}: {values[hour]:g}"
            body.append(
                f'<circle class="point" cx="{x:.1f}" cy="{y:.1f}" r="3" fill="{color}">'
                f"<title>{tip}</title></circle>"
            )
    return _svg(title, body, {n: colors.get(n, "#333") for n in series})


def stacked_bars(
    title: str, stacks: dict[str, dict[str, float]], colors: dict[str, str], unit: str
) -> str:
    """Bars over hours, stacked by key: `stacks[hour][key] = value`."""
    hours = sorted(stacks)
    totals = [sum(stacks[h].values()) for h in hours]
    if not hours or not any(totals):
        return _empty(title)
    xs = _hour_x(hours)
    top = _nice_top(max(totals))
    width = max(2.0, min(28.0, (W - PAD_L - PAD_R) / max(1, len(hours)) * 0.7))
    body = _axes(hours, xs, top, unit)
    for hour in hours:
        base = 0.0
        for key, color in colors.items():
            value = stacks[hour].get(key, 0)
            if not value:
                continue
            y0, y1 = _y(base, top), _y(base + value, top)
            x = xs[hour] - width / 2
            body.append(
                f'<rect class="bar" data-series="{escape(key)}" x="{x:.1f}" '
                f'y="{y1:.1f}" width="{width:.1f}" height="{y0 - y1:.1f}" fill="{color}">'
                f"<title>{escape(key)} {escape(hour)}: {value:g}</title></rect>"
            )
            base += value
    return _svg(title, body, colors)


def horizontal_bars(title: str, bars: list[tuple[str, float, str]]) -> str:
    """One bar per label: (label, value, color)."""
    if not bars:
        return _empty(title)
    top = _nice_top(max(v for _, v, _ in bars))
    row = 26
    height = PAD_T + row * len(bars) + 8
    left, right = 260, W - 60
    body = []
    for i, (label, value, color) in enumerate(bars):
        y = PAD_T + i * row
        length = (right - left) * (value / top if top else 0)
        body.append(
            f'<text class="label" x="{left - 8}" y="{y + 16}" text-anchor="end">'
            f"{escape(label)}</text>"
            f'<rect class="bar" x="{left}" y="{y + 4}" width="{length:.1f}" height="16" '
            f'fill="{color}"><title>{escape(label)}: {value:g}</title></rect>'
            f'<text class="tick" x="{left + length + 6:.1f}" y="{y + 16}">'
            f"{value:g}</text>"
        )
    return (
        f'<figure class="chart"><figcaption>{escape(title)}</figcaption>'
        f'<svg class="chart-svg" viewBox="0 0 {W} {height}" role="img" '
        f'aria-label="{escape(title)}">' + "".join(body) + "</svg></figure>"
    )


def _rates_by_mint(rows: list[dict[str, Any]]) -> dict[str, dict[str, dict[str, float]]]:
    charts: dict[str, dict[str, dict[str, float]]] = defaultdict(lambda: defaultdict(dict))
    for row in rows:
        if row.get("rate_per_1k") is not None:
            charts[row["mint_url"]][row["severity"]][row["hour"]] = float(row["rate_per_1k"])
    return charts


def _table(rows: list[dict[str, Any]], columns: Sequence[str], limit: int = 200) -> str:
    if not rows:
        return '<p class="none">No rows.</p>'
    head = "".join(f"<th>{escape(c)}</th>" for c in columns)
    body = "".join(
        "<tr>" + "".join(f"<td>{escape(_cell(r.get(c)))}</td>" for c in columns) + "</tr>"
        for r in rows[-limit:]
    )
    more = f'<p class="note">Last {limit} of {len(rows)} rows.</p>' if len(rows) > limit else ""
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>{more}"


def _cell(value: Any) -> str:
    if value is None:
        return "—"
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


_STYLE = """
body{font:14px/1.4 system-ui,sans-serif;margin:24px;color:#222;max-width:1100px}
h1{font-size:22px;margin:0 0 4px}h2{font-size:17px;margin:28px 0 8px}
.meta{color:#666;margin:0 0 16px}.chart{margin:12px 0 20px}
figcaption{font-weight:600;margin-bottom:4px}.chart-svg{width:100%;max-width:720px;height:auto;
background:#fafafa;border:1px solid #e0e0e0}.axis{stroke:#999}.grid{stroke:#eee}
.tick,.unit,.label{font-size:11px;fill:#555}.legend{font-size:12px;color:#444}
.key{margin-right:14px}.key i{display:inline-block;width:10px;height:10px;margin-right:4px}
table{border-collapse:collapse;font-size:12px}td,th{border:1px solid #ddd;padding:3px 8px;
text-align:right}th{background:#f3f3f3}td:nth-child(-n+3){text-align:left}
.none,.note{color:#777}
"""


def _rate_sections(hourly: dict[str, Any]) -> list[str]:
    sections = ["<h2>Hourly severity rates per mint</h2>"]
    rates = _rates_by_mint(hourly["rows"])
    if not rates:
        sections.append(_empty("Discrepancies per 1,000 proofs checked"))
    for mint, series in sorted(rates.items()):
        ordered = {s: series[s] for s in SEVERITY_COLORS if s in series}
        title = f"{mint} — discrepancies per 1,000 proofs checked"
        sections.append(line_chart(title, ordered, SEVERITY_COLORS, "per 1k"))
    return sections


def _blocked_sections(blocked: dict[str, Any]) -> list[str]:
    stacks: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    for row in blocked["rows"]:
        for code in CODE_COLORS:
            stacks[row["hour"]][code] += float(row.get(code) or 0)
    title = "Blocked melt preflights by code (all mints)"
    return ["<h2>Blocked melts per hour</h2>", stacked_bars(title, stacks, CODE_COLORS, "melts")]


def _type_sections(top_types: dict[str, Any]) -> list[str]:
    bars = [
        (
            f"{r['type']} ({r['severity']})",
            float(r["discrepancies"]),
            SEVERITY_COLORS.get(r["severity"], "#333"),
        )
        for r in top_types["rows"]
    ]
    return ["<h2>Top discrepancy types</h2>", horizontal_bars("Discrepancies by type", bars)]


def _latency_sections(latency: dict[str, Any]) -> list[str]:
    lat: dict[str, dict[str, float]] = {"p50_ms": {}, "p99_ms": {}}
    for row in latency["rows"]:
        for key in lat:
            # Several mints in one hour: show the worst, which is what an operator looks for.
            lat[key][row["hour"]] = max(lat[key].get(row["hour"], 0.0), float(row[key]))
    title = "Preflight duration per hour (worst mint)"
    return ["<h2>Preflight latency</h2>", line_chart(title, lat, LATENCY_COLORS, "ms")]


def render_report(
    *,
    hourly: dict[str, Any],
    blocked: dict[str, Any],
    top_types: dict[str, Any],
    latency: dict[str, Any],
    generated_at: datetime,
) -> str:
    since = escape(str(hourly.get("since")))
    stamp = generated_at.isoformat(timespec="seconds")
    sections = [
        *_rate_sections(hourly),
        *_blocked_sections(blocked),
        *_type_sections(top_types),
        *_latency_sections(latency),
        "<h2>Hourly table</h2>",
        _table(
            hourly["rows"],
            ["hour", "mint_url", "severity", "discrepancies", "proofs_checked", "rate_per_1k"],
        ),
        "<h2>Blocked melts</h2>",
        _table(blocked["rows"], ["hour", "mint_url", "preflights", "blocked", *CODE_COLORS]),
    ]
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        "<title>proofrecon analytics</title>"
        f"<style>{_STYLE}</style></head><body>"
        "<h1>proofrecon — discrepancy analytics</h1>"
        f'<p class="meta">Since {since} · generated {escape(stamp)}</p>'
        + "".join(sections)
        + "</body></html>"
    )
