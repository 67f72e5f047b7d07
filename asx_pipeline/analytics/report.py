"""The daily report: one session's breadth, movers, screener hits, corporate actions and
data-quality warnings, as Markdown (shown in the Dagster UI) and as a self-contained HTML page
with an embedded PNG chart (no external files, so it can be mailed or opened anywhere).

Both renderings come from the same `ReportSection`s, so they always say the same thing.
"""

from __future__ import annotations

import base64
import datetime as dt
import html
import io
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

# The Agg canvas is used explicitly (never pyplot), so no display is needed on a server.
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

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


def render_html(title: str, sections: list[ReportSection], chart_png: bytes) -> str:
    body = [f"<h1>{html.escape(title)}</h1>"]
    encoded = base64.b64encode(chart_png).decode("ascii")
    body.append(f'<img alt="Return distribution and movers" src="data:image/png;base64,{encoded}">')
    for section in sections:
        body.append(f"<h2>{html.escape(section.heading)}</h2>")
        if section.table is not None and not section.table.empty:
            body.append(section.table.to_html(index=False, border=0, classes="data"))
        if section.lines:
            items = "".join(f"<li>{html.escape(line)}</li>" for line in section.lines)
            body.append(f"<ul>{items}</ul>")
    return _PAGE.format(title=html.escape(title), body="\n".join(body))


def render_chart(indicators: pd.DataFrame, title: str) -> bytes:
    """A PNG: the distribution of the session's returns, and its biggest movers."""
    returns = indicators[["symbol", "return_1d"]].dropna().sort_values(["return_1d", "symbol"])
    figure = Figure(figsize=(9, 3.4), dpi=80)
    FigureCanvasAgg(figure)
    left, right = figure.subplots(1, 2)
    values = returns["return_1d"].to_numpy() * 100
    if len(values):
        left.hist(values, bins=min(30, max(5, len(values) // 3)), color="#4c72b0")
        left.axvline(float(np.median(values)), color="black", linestyle="--", linewidth=1)
    left.set_title("Returns (%), median dashed")
    movers = pd.concat([returns.head(MOVERS), returns.tail(MOVERS)]).drop_duplicates("symbol")
    colours = ["#c44e52" if r < 0 else "#55a868" for r in movers["return_1d"]]
    right.barh(movers["symbol"], movers["return_1d"] * 100, color=colours)
    right.set_title("Biggest movers (%)")
    figure.suptitle(title, fontsize=10)
    # A fixed layout: tight_layout would draw the figure twice (a third of the time per report).
    figure.subplots_adjust(left=0.06, right=0.98, bottom=0.12, top=0.84, wspace=0.3)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()


_PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>{title}</title>
<style>
body {{ font-family: system-ui, sans-serif; max-width: 60rem; margin: 2rem auto; color: #222; }}
table.data {{ border-collapse: collapse; margin: 0.5rem 0; }}
table.data th, table.data td {{ padding: 0.2rem 0.7rem; border-bottom: 1px solid #ddd; }}
img {{ max-width: 100%; }}
</style>
</head>
<body>
{body}
</body>
</html>
"""
