"""The daily report: one session's breadth, movers, screener hits, corporate actions and
data-quality warnings, as Markdown (shown in the Dagster UI) and as a self-contained HTML page
with an inline SVG chart drawn from the data (no external files, so it can be mailed or opened
anywhere; crisp at any size, and a few kilobytes of text instead of a matplotlib figure per
session, which cost more than every other step of a session's report together).

Both renderings come from the same `ReportSection`s, so they always say the same thing.
"""

from __future__ import annotations

import datetime as dt
import html
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

MOVERS = 5
HITS_PER_SCREENER = 5


@dataclass(frozen=True)
class ReportSection:
    heading: str
    table: pd.DataFrame | None = None
    lines: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class SessionData:
    """Everything the report of one session is made of (frames already cut to the session)."""

    trade_date: dt.date
    breadth: pd.Series | None
    indicators: pd.DataFrame
    prices: pd.DataFrame
    screener_hits: pd.DataFrame
    actions: pd.DataFrame
    warnings: list[str]


def report_title(trade_date: dt.date) -> str:
    return f"ASX daily report: {trade_date:%A %d %B %Y}"


def build_sections(data: SessionData) -> list[ReportSection]:
    return [
        _breadth_section(data.breadth),
        *_mover_sections(data.indicators, data.prices),
        _screener_section(data.screener_hits),
        _actions_section(data.actions),
        ReportSection("Data-quality warnings", lines=data.warnings or ["None."]),
    ]


def _breadth_section(breadth: pd.Series | None) -> ReportSection:
    if breadth is None:
        return ReportSection("Market breadth", lines=["No breadth for this session."])
    pct = breadth["pct_above_sma_200"]
    median = breadth["median_return"]
    rows = [
        ("Symbols", f"{int(breadth['symbols'])}"),
        (
            "Advancers / decliners / unchanged",
            f"{int(breadth['advancers'])} / {int(breadth['decliners'])} / "
            f"{int(breadth['unchanged'])}",
        ),
        (
            "New 52-week highs / lows",
            f"{int(breadth['new_highs_52w'])} / {int(breadth['new_lows_52w'])}",
        ),
        ("Above 200-day SMA", "n/a" if pd.isna(pct) else f"{pct:.1f}%"),
        ("Median return", "n/a" if pd.isna(median) else f"{median:+.2%}"),
    ]
    return ReportSection("Market breadth", pd.DataFrame(rows, columns=["Measure", "Value"]))


def _mover_sections(indicators: pd.DataFrame, prices: pd.DataFrame) -> list[ReportSection]:
    moves = (
        indicators[["symbol", "return_1d"]]
        .dropna()
        .merge(prices[["symbol", "close", "volume"]], on="symbol", how="left")
    )
    ordered = moves.sort_values(["return_1d", "symbol"], ascending=[False, True])
    top = ordered.head(MOVERS)
    bottom = ordered.iloc[::-1].head(MOVERS) if len(ordered) > MOVERS else ordered.iloc[0:0]
    return [
        ReportSection("Top movers", _movers_table(top)),
        ReportSection("Bottom movers", _movers_table(bottom)),
    ]


def _movers_table(rows: pd.DataFrame) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "Symbol": rows["symbol"].to_numpy(),
            "Return": [f"{r:+.2%}" for r in rows["return_1d"]],
            "Close": [f"{c:,.3f}" for c in rows["close"]],
            "Volume": [f"{int(v):,}" if pd.notna(v) else "" for v in rows["volume"]],
        }
    )


def _screener_section(hits: pd.DataFrame) -> ReportSection:
    if hits.empty:
        return ReportSection("Screener hits", lines=["No screener matched today."])
    shown = hits[hits["rank"] <= HITS_PER_SCREENER].sort_values(["screener", "rank"])
    table = pd.DataFrame(
        {
            "Screener": shown["screener"].to_numpy(),
            "Rank": shown["rank"].astype(int).to_numpy(),
            "Symbol": shown["symbol"].to_numpy(),
            "Score": [f"{s:.4g}" for s in shown["score"]],
            "Close": [f"{c:,.3f}" for c in shown["close"]],
        }
    )
    totals = hits.groupby("screener").size()
    lines = [f"{name}: {count} hit(s)" for name, count in totals.items()]
    return ReportSection("Screener hits", table, lines)


def _actions_section(actions: pd.DataFrame) -> ReportSection:
    if actions.empty:
        return ReportSection("Corporate actions", lines=["None today."])
    ordered = actions.sort_values(["symbol", "action"])
    table = pd.DataFrame(
        {
            "Symbol": ordered["symbol"].to_numpy(),
            "Action": ordered["action"].to_numpy(),
            "Value": [
                f"${v:.3f} per share" if a == "dividend" else f"{v:g} new per old"
                for a, v in zip(ordered["action"], ordered["value"], strict=True)
            ],
        }
    )
    return ReportSection("Corporate actions", table)


def render_markdown(title: str, sections: list[ReportSection]) -> str:
    parts = [f"# {title}"]
    for section in sections:
        parts.append(f"## {section.heading}")
        if section.table is not None and not section.table.empty:
            # disable_numparse: keep the formatted strings ("5.700") as they are.
            parts.append(section.table.to_markdown(index=False, disable_numparse=True))
        if section.lines:
            parts.append("\n".join(f"- {line}" for line in section.lines))
    return "\n\n".join(parts) + "\n"


def render_html(title: str, sections: list[ReportSection], chart_svg: str) -> str:
    body = [f"<h1>{html.escape(title)}</h1>", chart_svg]
    for section in sections:
        body.append(f"<h2>{html.escape(section.heading)}</h2>")
        if section.table is not None and not section.table.empty:
            body.append(section.table.to_html(index=False, border=0, classes="data"))
        if section.lines:
            items = "".join(f"<li>{html.escape(line)}</li>" for line in section.lines)
            body.append(f"<ul>{items}</ul>")
    return _PAGE.format(title=html.escape(title), body="\n".join(body))


# The chart's geometry, in SVG user units (the page scales it to its width). Inline in HTML5,
# the <svg> element needs no xmlns: the page links to nothing outside itself.
_WIDTH, _HEIGHT, _TOP, _BOTTOM = 720, 260, 40, 30
_PANEL = (_WIDTH - 60) / 2
_UP, _DOWN, _NEUTRAL = "#55a868", "#c44e52", "#4c72b0"


def render_chart(indicators: pd.DataFrame, title: str) -> str:
    """An inline SVG: the distribution of the session's returns (median dashed), and its
    biggest movers."""
    returns = indicators[["symbol", "return_1d"]].dropna().sort_values(["return_1d", "symbol"])
    movers = pd.concat([returns.head(MOVERS), returns.tail(MOVERS)]).drop_duplicates("symbol")
    parts = [
        f'<svg viewBox="0 0 {_WIDTH} {_HEIGHT}" '
        f'role="img" aria-label="Return distribution and movers" class="chart">',
        f'<text x="{_WIDTH / 2}" y="16" text-anchor="middle" font-size="13">'
        f"{html.escape(title)}</text>",
        *_histogram(returns["return_1d"].to_numpy() * 100, x0=20),
        *_movers_bars(movers, x0=40 + _PANEL),
        "</svg>",
    ]
    return "\n".join(parts)


def _histogram(values: np.ndarray, x0: float) -> list[str]:
    parts = [_label(x0 + _PANEL / 2, _TOP - 8, "Returns (%), median dashed")]
    if not len(values):
        return parts
    counts, edges = np.histogram(values, bins=min(30, max(5, len(values) // 3)))
    height = _HEIGHT - _TOP - _BOTTOM
    low, high = float(edges[0]), float(edges[-1])
    span = (high - low) or 1.0
    width = _PANEL / len(counts)
    for index, count in enumerate(counts):
        bar = height * count / counts.max()
        parts.append(
            f'<rect class="bin" x="{x0 + index * width:.1f}" y="{_TOP + height - bar:.1f}" '
            f'width="{max(width - 1, 1):.1f}" height="{bar:.1f}" fill="{_NEUTRAL}">'
            f"<title>{edges[index]:.2f}% to {edges[index + 1]:.2f}%: {count}</title></rect>"
        )
    median = x0 + _PANEL * (float(np.median(values)) - low) / span
    parts.append(
        f'<line class="median" x1="{median:.1f}" x2="{median:.1f}" y1="{_TOP}" '
        f'y2="{_TOP + height}" stroke="black" stroke-dasharray="4 3"/>'
    )
    axis = _TOP + height + 14
    parts += [
        _label(x0, axis, f"{low:.1f}", "start"),
        _label(x0 + _PANEL, axis, f"{high:.1f}", "end"),
    ]
    return parts


def _movers_bars(movers: pd.DataFrame, x0: float) -> list[str]:
    parts = [_label(x0 + _PANEL / 2, _TOP - 8, "Biggest movers (%)")]
    if movers.empty:
        return parts
    moves = movers["return_1d"].to_numpy() * 100
    reach = float(np.abs(moves).max()) or 1.0
    zero = x0 + 50 + (_PANEL - 50) / 2
    half = (_PANEL - 50) / 2
    row = (_HEIGHT - _TOP - _BOTTOM) / len(moves)
    for index, (symbol, move) in enumerate(zip(movers["symbol"], moves, strict=True)):
        y = _TOP + index * row
        length = half * abs(move) / reach
        left = zero - length if move < 0 else zero
        colour = _DOWN if move < 0 else _UP
        parts += [
            _label(x0, y + row * 0.7, html.escape(str(symbol)), "start"),
            f'<rect class="mover" x="{left:.1f}" y="{y + row * 0.15:.1f}" '
            f'width="{max(length, 0.5):.1f}" height="{row * 0.7:.1f}" fill="{colour}">'
            f"<title>{html.escape(str(symbol))}: {move:+.2f}%</title></rect>",
        ]
    parts.append(
        f'<line x1="{zero:.1f}" x2="{zero:.1f}" y1="{_TOP}" y2="{_HEIGHT - _BOTTOM}" '
        'stroke="#888"/>'
    )
    return parts


def _label(x: float, y: float, text: str, anchor: str = "middle") -> str:
    return f'<text x="{x:.1f}" y="{y:.1f}" text-anchor="{anchor}" font-size="11">{text}</text>'


_PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>{title}</title>
<style>
body {{ font-family: system-ui, sans-serif; max-width: 60rem; margin: 2rem auto; color: #222; }}
table.data {{ border-collapse: collapse; margin: 0.5rem 0; }}
table.data th, table.data td {{ padding: 0.2rem 0.7rem; border-bottom: 1px solid #ddd; }}
svg.chart {{ width: 100%; height: auto; font-family: system-ui, sans-serif; }}
</style>
</head>
<body>
{body}
</body>
</html>
"""
