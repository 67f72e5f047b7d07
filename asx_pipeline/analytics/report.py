"""The daily report: one session's market, movers, industry groups, screener hits, corporate
actions and data quality, as Markdown (shown in the Dagster UI, and the mail's plain text) and as
a self-contained HTML page with charts drawn from the data (charts.py).

`ReportInputs` holds the frames of a whole run (its sessions plus the history the report looks
back over) and does the range-wide work once; `ReportInputs.session(day)` then cuts out one
session's `SessionData`, from which `build_sections` makes the sections both renderings share, so
they always say the same thing. Everything a session's report shows depends only on the stored
rows around that session, never on the other sessions of the run, so a range run writes the same
reports as day-by-day runs.
"""

from __future__ import annotations

import datetime as dt
import html
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from asx_pipeline.analytics import quality
from asx_pipeline.analytics.charts import (
    Chart,
    breadth_chart,
    groups_chart,
    movers_chart,
    returns_chart,
    spark_text,
    sparkline,
    to_svg,
)

MOVERS = 5
HITS_PER_SCREENER = 5
HISTORY_SESSIONS = 60  # breadth chart and sparklines
GROUP_RETURN_SESSIONS = 20
RECENT_ACTION_SESSIONS = 10  # corporate actions: this session and the 9 before it
UPCOMING_ACTION_SESSIONS = 10
UNCLASSIFIED = "Not classified"


@dataclass(frozen=True)
class Table:
    """Formatted cells, row by row (a DataFrame per table cost more than drawing the charts)."""

    columns: list[str]
    rows: list[list[str]]


@dataclass(frozen=True)
class ReportSection:
    heading: str
    table: Table | None = None
    lines: list[str] = field(default_factory=list)
    charts: list[Chart] = field(default_factory=list)
    # HTML only: a chart per table row for a column (its text stays in Markdown and plain text).
    cell_charts: dict[str, list[Chart | None]] = field(default_factory=dict)
    # Markdown only: what the HTML shows as a chart, drawn in text.
    text_charts: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class SessionData:
    """Everything the report of one session is made of (frames already cut to the session)."""

    trade_date: dt.date
    breadth: pd.Series | None
    breadth_history: pd.DataFrame  # up to HISTORY_SESSIONS rows of market_breadth, oldest first
    moves: pd.DataFrame  # symbol, return_1d, close, volume: worst to best, ties by symbol
    best_first: pd.DataFrame  # the same, best to worst, ties by symbol
    groups: pd.DataFrame  # group, symbols, day, sessions_20
    screener_hits: pd.DataFrame  # the top HITS_PER_SCREENER of each screener, by screener, rank
    hit_counts: list[tuple[str, int]]  # every screener that matched, and how many symbols
    paths: dict[str, np.ndarray]  # symbol -> its adjusted path over the last sessions
    recent_actions: pd.DataFrame
    upcoming_actions: pd.DataFrame
    warnings: list[str]
    not_fetched: list[str] = field(default_factory=list)  # "SYMBOL: reason", from ingestion
    refused: list[str] = field(default_factory=list)  # "SYMBOL date: reason"


def report_title(trade_date: dt.date) -> str:
    return f"ASX daily report: {trade_date:%A %d %B %Y}"


# ---- the range's frames, cut per session -----------------------------------------------------


class ReportInputs:
    """The frames of a run: `indicators`, `breadth` and `actions` reach back (and actions ahead)
    of the run's sessions; `prices`, `hits` and `symbols` cover the run's sessions."""

    def __init__(
        self,
        sessions: Sequence[dt.date],
        calendar: Sequence[dt.date],
        indicators_history: pd.DataFrame,
        indicators: pd.DataFrame,
        breadth: pd.DataFrame,
        prices: pd.DataFrame,
        hits: pd.DataFrame,
        actions: pd.DataFrame,
        symbols: pd.DataFrame,
        ingestion: dict[dt.date, tuple[list[str], list[str]]] | None = None,
    ) -> None:
        """`indicators_history`: every stored row of the lookback (paths, group returns);
        `indicators` and `prices`: the run's sessions, of the symbols each session tracks."""
        self.sessions = list(sessions)
        self._calendar = np.array(calendar, dtype="datetime64[D]")
        self._breadth = breadth.sort_values("trade_date", ignore_index=True)
        self._breadth_days = self._breadth["trade_date"].to_numpy(dtype="datetime64[D]")
        # Ordered as the report lists them, so a session's slice needs no sorting.
        self._actions = actions.sort_values(["ex_date", "symbol", "action"], ignore_index=True)
        self._action_days = self._actions["ex_date"].to_numpy(dtype="datetime64[D]")
        self._ingestion = ingestion or {}
        self._indicators = _by_day(indicators, "trade_date")
        moves = _moves(indicators, prices)
        self._moves = _by_day(moves, "trade_date")
        # The top list breaks ties by symbol too: its own order, sorted once for the range.
        best_first = moves.sort_values(
            ["trade_date", "return_1d", "symbol"], ascending=[True, False, True]
        )
        self._best_first = _by_day(best_first, "trade_date")
        shown = hits[hits["rank"] <= HITS_PER_SCREENER]
        self._hits = _by_day(shown.sort_values(["trade_date", "screener", "rank"]), "trade_date")
        counts = hits.groupby(["trade_date", "screener"], sort=True).size()
        self._hit_counts: dict[dt.date, list[tuple[str, int]]] = {}
        for (day, screener), count in counts.items():
            self._hit_counts.setdefault(day, []).append((screener, int(count)))
        self._none = {"hits": hits[0:0], "moves": _moves(indicators[0:0], prices[0:0])}
        self._growth, self._growth_days, self._columns = _growth_matrix(indicators_history)
        self._groups = self._group_returns(symbols)
        self._warnings = range_warnings(self.sessions, prices, symbols, actions, indicators)

    def session(self, day: dt.date) -> SessionData:
        hits = self._hits.get(day, self._none["hits"])
        breadth_history = self._breadth_until(day)
        breadth = breadth_history.iloc[-1] if _last_is(breadth_history, day) else None
        recent_from = self._session_offset(day, -(RECENT_ACTION_SESSIONS - 1))
        upcoming_to = self._session_offset(day, UPCOMING_ACTION_SESSIONS)
        return SessionData(
            trade_date=day,
            breadth=breadth,
            breadth_history=breadth_history,
            moves=self._moves.get(day, self._none["moves"]),
            best_first=self._best_first.get(day, self._none["moves"]),
            groups=self._groups.get(day, _NO_GROUPS),
            screener_hits=hits,
            hit_counts=self._hit_counts.get(day, []),
            paths={symbol: self._path(symbol, day) for symbol in set(hits.get("symbol", []))},
            recent_actions=self._actions_between(recent_from, day, first_included=True),
            upcoming_actions=self._actions_between(day, upcoming_to, first_included=False),
            warnings=self._warnings.get(day, []),
            not_fetched=self._ingestion.get(day, ([], []))[0],
            refused=self._ingestion.get(day, ([], []))[1],
        )

    def _actions_between(self, first: dt.date, last: dt.date, first_included: bool) -> pd.DataFrame:
        side = "left" if first_included else "right"
        start = int(np.searchsorted(self._action_days, np.datetime64(first), side=side))
        end = int(np.searchsorted(self._action_days, np.datetime64(last), side="right"))
        return self._actions.iloc[start:end]

    def _breadth_until(self, day: dt.date) -> pd.DataFrame:
        end = int(np.searchsorted(self._breadth_days, np.datetime64(day), side="right"))
        return self._breadth.iloc[max(0, end - HISTORY_SESSIONS) : end]

    def _session_offset(self, day: dt.date, offset: int) -> dt.date:
        index = int(np.searchsorted(self._calendar, np.datetime64(day))) + offset
        index = min(max(index, 0), len(self._calendar) - 1)
        return self._calendar[index].astype(object)

    def _rows_until(self, day: dt.date, count: int) -> np.ndarray:
        end = int(np.searchsorted(self._growth_days, np.datetime64(day), side="right"))
        return self._growth[max(0, end - count) : end]

    def _path(self, symbol: str, day: dt.date) -> np.ndarray:
        """The symbol's adjusted close over the last sessions, as a multiple of the first (a
        session without a return leaves the path flat there)."""
        column = self._columns.get(symbol)
        if column is None:
            return np.array([])
        growth = self._rows_until(day, HISTORY_SESSIONS)[:, column]
        return np.cumprod(np.where(np.isfinite(growth), growth, 1.0))

    def _group_returns(self, symbols: pd.DataFrame) -> dict[dt.date, pd.DataFrame]:
        """Per session: each industry group's average one-day and 20-session return."""
        frames = []
        for day in self.sessions:
            indicators = self._indicators.get(day)
            if indicators is None or indicators.empty:
                continue
            growth = self._rows_until(day, GROUP_RETURN_SESSIONS)
            # A symbol needs a return on each of the 20 sessions; a gap leaves it out.
            full = len(growth) == GROUP_RETURN_SESSIONS
            compounded = np.prod(growth, axis=0) - 1 if full else None
            columns = indicators["symbol"].map(self._columns)
            sessions_20 = (
                [compounded[int(c)] if pd.notna(c) else np.nan for c in columns]
                if compounded is not None
                else np.nan
            )
            frames.append(
                indicators[["trade_date", "symbol", "return_1d"]].assign(sessions_20=sessions_20)
            )
        if not frames:
            return {}
        joined = pd.concat(frames, ignore_index=True).merge(
            symbols[["as_of_date", "symbol", "gics_industry_group"]].rename(
                columns={"as_of_date": "trade_date"}
            ),
            on=["trade_date", "symbol"],
            how="left",
        )
        joined["group"] = joined["gics_industry_group"].fillna(UNCLASSIFIED)
        table = (
            joined.groupby(["trade_date", "group"], sort=True)
            .agg(
                symbols=("symbol", "size"),
                day=("return_1d", "mean"),
                sessions_20=("sessions_20", "mean"),
            )
            .reset_index()
            .sort_values(["trade_date", "day", "group"], ascending=[True, False, True])
        )
        return {day: rows.drop(columns="trade_date") for day, rows in table.groupby("trade_date")}


def _moves(indicators: pd.DataFrame, prices: pd.DataFrame) -> pd.DataFrame:
    """Each symbol's return with its close and volume, per session from worst to best (ties by
    symbol)."""
    bars = prices[["trade_date", "symbol", "close", "volume"]]
    moves = indicators[["trade_date", "symbol", "return_1d"]].dropna()
    moves = moves.merge(bars, on=["trade_date", "symbol"], how="left")
    return moves.sort_values(["trade_date", "return_1d", "symbol"], ignore_index=True)


def _growth_matrix(indicators: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, dict[str, int]]:
    """1 + return_1d as a sessions x symbols matrix (NaN where a symbol has no return)."""
    if indicators.empty:
        return np.empty((0, 0)), np.array([], dtype="datetime64[D]"), {}
    returns = indicators.pivot(index="trade_date", columns="symbol", values="return_1d")
    returns = returns.sort_index()
    days = np.array(returns.index, dtype="datetime64[D]")
    columns = {symbol: index for index, symbol in enumerate(returns.columns)}
    return 1.0 + returns.to_numpy(dtype="float64"), days, columns


def _by_day(frame: pd.DataFrame, column: str) -> dict[dt.date, pd.DataFrame]:
    if frame.empty:
        return {}
    return {day: rows for day, rows in frame.groupby(column, sort=False)}


_NO_GROUPS = pd.DataFrame(columns=["group", "symbols", "day", "sessions_20"])


def _last_is(frame: pd.DataFrame, day: dt.date) -> bool:
    return not frame.empty and frame["trade_date"].iloc[-1] == day


# ---- data-quality warnings --------------------------------------------------------------------


# Each rule, and the column that dates what it finds. Run over the whole range once; a session
# it flags is then judged alone, so the sentence is the one a day-by-day run writes.
_RULES: list[tuple[Callable[..., quality.Finding], str]] = [
    (lambda prices, symbols, actions: quality.non_positive_prices(prices), "trade_date"),
    (lambda prices, symbols, actions: quality.inconsistent_ohlc(prices), "trade_date"),
    (lambda prices, symbols, actions: quality.negative_volume(prices), "trade_date"),
    (lambda prices, symbols, actions: quality.low_coverage(prices, symbols), "trade_date"),
    (lambda prices, symbols, actions: quality.implausible_actions(actions, prices), "ex_date"),
]


def range_warnings(
    sessions: Sequence[dt.date],
    prices: pd.DataFrame,
    symbols: pd.DataFrame,
    actions: pd.DataFrame,
    indicators: pd.DataFrame,
) -> dict[dt.date, list[str]]:
    """Per session, the data-quality rules of checks.py (quality.py) as sentences."""
    flagged = [set(rule(prices, symbols, actions).rows.get(column, [])) for rule, column in _RULES]
    prices_by, symbols_by = _by_day(prices, "trade_date"), _by_day(symbols, "as_of_date")
    actions_by, indicators_by = _by_day(actions, "ex_date"), _by_day(indicators, "trade_date")
    warnings = {}
    for day in sessions:
        day_prices = prices_by.get(day, prices.iloc[0:0])
        day_symbols = symbols_by.get(day, symbols.iloc[0:0])
        found = [
            rule(day_prices, day_symbols, actions_by.get(day, actions.iloc[0:0]))
            for (rule, _), dates in zip(_RULES, flagged, strict=True)
            if day in dates
        ]
        warnings[day] = [f.summary + _examples(f) for f in found if not f.passed] + _roll_call(
            day_prices, day_symbols, indicators_by.get(day, indicators.iloc[0:0])
        )
    return warnings


def _roll_call(prices: pd.DataFrame, symbols: pd.DataFrame, indicators: pd.DataFrame) -> list[str]:
    """Who is suspended, who is active without a bar, who has too little history."""
    warnings = []
    suspended = sorted(symbols.loc[symbols["status"] == "suspended", "symbol"])
    if suspended:
        warnings.append(f"Suspended: {', '.join(suspended)}")
    active = set(symbols.loc[symbols["status"] == "active", "symbol"])
    missing = sorted(active - set(prices["symbol"]))
    if missing:
        warnings.append(f"Active but no bar: {', '.join(missing[:20])}")
    short = sorted(indicators.loc[indicators["sma_200"].isna(), "symbol"])
    if short:
        warnings.append(f"Under 200 sessions of history (no sma_200): {', '.join(short[:20])}")
    return warnings


def _examples(finding: quality.Finding) -> str:
    if "symbol" not in finding.rows.columns:
        return ""
    return " (" + ", ".join(sorted(set(finding.rows["symbol"]))[:10]) + ")"


# ---- sections -------------------------------------------------------------------------------


def build_sections(data: SessionData) -> list[ReportSection]:
    return [
        _breadth_section(data.breadth, data.breadth_history),
        *_mover_sections(data.moves, data.best_first),
        _groups_section(data.groups),
        _screener_section(data.screener_hits, data.hit_counts, data.paths),
        _actions_section(
            f"Corporate actions: this session and the {RECENT_ACTION_SESSIONS - 1} before",
            data.recent_actions,
            "None.",
        ),
        _actions_section(
            f"Corporate actions: the next {UPCOMING_ACTION_SESSIONS} sessions (as stored)",
            data.upcoming_actions,
            "None stored yet (Yahoo's price history reports an action on its ex-date).",
        ),
        _quality_section(data),
    ]


def _breadth_section(breadth: pd.Series | None, history: pd.DataFrame) -> ReportSection:
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
        ("Above 200-day SMA", _percent(pct)),
        ("Median return", "n/a" if pd.isna(median) else f"{median:+.2%}"),
    ]
    net = history["advancers"] - history["decliners"]
    shares = history["pct_above_sma_200"].dropna()
    first = _percent(shares.iloc[0] if len(shares) else None)
    last = _percent(shares.iloc[-1] if len(shares) else None)
    lines = [
        f"Last {len(history)} sessions: advancers - decliners net {int(net.sum()):+d}; "
        f"above the 200-day SMA from {first} to {last}."
    ]
    trend = [
        f"Advancers - decliners, running total: {spark_text(net.cumsum())}",
        f"Above the 200-day SMA: {spark_text(shares)}",
    ]
    return ReportSection(
        "Market breadth",
        Table(["Measure", "Value"], [list(row) for row in rows]),
        lines,
        charts=[breadth_chart(history)],
        text_charts=trend,
    )


def _mover_sections(moves: pd.DataFrame, best_first: pd.DataFrame) -> list[ReportSection]:
    top = best_first.head(MOVERS)
    bottom = best_first.iloc[::-1].head(MOVERS) if len(best_first) > MOVERS else best_first[0:0]
    return [
        ReportSection(
            "Top movers",
            _movers_table(top),
            charts=[returns_chart(moves), movers_chart(moves)],
        ),
        ReportSection("Bottom movers", _movers_table(bottom)),
    ]


def _movers_table(rows: pd.DataFrame) -> Table:
    return Table(
        ["Symbol", "Return", "Close", "Volume"],
        [
            [str(symbol), f"{r:+.2%}", f"{c:,.3f}", f"{int(v):,}" if pd.notna(v) else ""]
            for symbol, r, c, v in zip(
                rows["symbol"], rows["return_1d"], rows["close"], rows["volume"], strict=True
            )
        ],
    )


def _groups_section(groups: pd.DataFrame) -> ReportSection:
    heading = "Industry groups"
    if groups.empty:
        return ReportSection(heading, lines=["No returns for this session."])
    table = Table(
        ["Group", "Symbols", "Day", f"{GROUP_RETURN_SESSIONS} sessions"],
        [
            [str(group), str(int(count)), _signed(day), _signed(twenty)]
            for group, count, day, twenty in zip(
                groups["group"], groups["symbols"], groups["day"], groups["sessions_20"],
                strict=True,
            )
        ],
    )  # fmt: skip
    lines = [
        "Equal-weighted average of the group's returns (adjusted); the "
        f"{GROUP_RETURN_SESSIONS}-session figure counts symbols with a return on each of them."
    ]
    return ReportSection(heading, table, lines, charts=[groups_chart(groups)])


def _screener_section(
    shown: pd.DataFrame, counts: list[tuple[str, int]], paths: dict[str, np.ndarray]
) -> ReportSection:
    """The top hits of each screener (`shown`, by screener and rank), and every count."""
    if shown.empty:
        return ReportSection("Screener hits", lines=["No screener matched today."])
    column = f"Last {HISTORY_SESSIONS} sessions"
    rows, charts = [], []
    for index, (screener, rank, symbol, score, close) in enumerate(
        zip(shown["screener"], shown["rank"], shown["symbol"], shown["score"], shown["close"],
            strict=True)
    ):  # fmt: skip
        path = paths.get(symbol, np.array([]))
        trend = f"{spark_text(path)} {_path_change(path)}"
        rows.append([str(screener), str(int(rank)), str(symbol), f"{score:.4g}", f"{close:,.3f}",
                     trend])  # fmt: skip
        charts.append(sparkline(f"spark-{index}-{symbol}", path) if len(path) else None)
    lines = [f"{name}: {count} hit(s)" for name, count in counts]
    table = Table(["Screener", "Rank", "Symbol", "Score", "Close", column], rows)
    return ReportSection("Screener hits", table, lines, cell_charts={column: charts})


def _path_change(path: np.ndarray | None) -> str:
    if path is None or len(path) < 2:
        return ""
    return f"{path[-1] / path[0] - 1:+.1%}"


def _actions_section(heading: str, actions: pd.DataFrame, none: str) -> ReportSection:
    """`actions` come ordered by ex-date, symbol and action (ReportInputs)."""
    if actions.empty:
        return ReportSection(heading, lines=[none])
    rows = [
        [
            str(day),
            str(symbol),
            str(action),
            f"${value:.3f} per share" if action == "dividend" else f"{value:g} new per old",
        ]
        for day, symbol, action, value in zip(
            actions["ex_date"], actions["symbol"], actions["action"], actions["value"], strict=True
        )
    ]
    return ReportSection(heading, Table(["Ex-date", "Symbol", "Action", "Value"], rows))


def _quality_section(data: SessionData) -> ReportSection:
    lines = list(data.warnings)
    if data.not_fetched:
        lines.append("Not fetched, stored rows kept: " + "; ".join(data.not_fetched[:20]))
    if data.refused:
        lines.append("Refused as junk, stored rows kept: " + "; ".join(data.refused[:20]))
    return ReportSection("Data quality", lines=lines or ["No problems found."])


def _percent(value: object) -> str:
    return "n/a" if value is None or pd.isna(value) else f"{float(value):.1f}%"


def _signed(value: object) -> str:
    return "n/a" if value is None or pd.isna(value) else f"{float(value):+.2%}"


# ---- rendering ------------------------------------------------------------------------------


def render_markdown(title: str, sections: list[ReportSection]) -> str:
    parts = [f"# {title}"]
    for section in sections:
        parts.append(f"## {section.heading}")
        if section.table is not None and section.table.rows:
            parts.append(markdown_table(section.table))
        if section.lines or section.text_charts:
            parts.append("\n".join(f"- {line}" for line in section.lines + section.text_charts))
    return "\n\n".join(parts) + "\n"


def markdown_table(table: Table) -> str:
    """A pipe table of already formatted cells, left-aligned, as tabulate's "pipe" format
    writes it (`to_markdown(index=False, disable_numparse=True)`), without its per-cell type
    sniffing, which cost more than the rest of a session's report."""
    header, rows = table.columns, table.rows
    widths = [
        max(len(name) + 2, *(len(row[index]) for row in rows)) for index, name in enumerate(header)
    ]
    lines = [
        _pipe_row(header, widths),
        "|" + "|".join(":" + "-" * (width + 1) for width in widths) + "|",
        *(_pipe_row(row, widths) for row in rows),
    ]
    return "\n".join(lines)


def _pipe_row(cells: list[str], widths: list[int]) -> str:
    return "| " + " | ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)) + " |"


def render_html(
    title: str, sections: list[ReportSection], embed: Callable[[Chart], str] = to_svg
) -> str:
    """The page; `embed` turns a chart into HTML (inline SVG for the file, an <img> of an
    attached PNG for the mail)."""
    body = [f"<h1>{html.escape(title)}</h1>"]
    for section in sections:
        body.append(f"<h2>{html.escape(section.heading)}</h2>")
        if section.charts:
            figures = "".join(f'<div class="figure">{embed(c)}</div>' for c in section.charts)
            body.append(f'<div class="figures">{figures}</div>')
        if section.table is not None and section.table.rows:
            body.append(_html_table(section.table, section.cell_charts, embed))
        if section.lines:
            items = "".join(f"<li>{html.escape(line)}</li>" for line in section.lines)
            body.append(f"<ul>{items}</ul>")
    return _PAGE.format(title=html.escape(title), body="\n".join(body))


def _html_table(
    table: Table,
    cell_charts: dict[str, list[Chart | None]],
    embed: Callable[[Chart], str],
) -> str:
    columns = table.columns
    head = "".join(f"<th>{html.escape(c)}</th>" for c in columns)
    charted = [cell_charts.get(c) for c in columns]
    rows = []
    for index, values in enumerate(table.rows):
        cells = []
        for value, charts in zip(values, charted, strict=True):
            chart = charts[index] if charts else None
            cells.append(embed(chart) if chart else _breakable(value))
        rows.append("<tr><td>" + "</td><td>".join(cells) + "</td></tr>")
    return (
        '<div class="scroll"><table class="data"><thead><tr>'
        f"{head}</tr></thead><tbody>{''.join(rows)}</tbody></table></div>"
    )


def _breakable(value: str) -> str:
    """A cell's text, escaped, that may wrap after an underscore: screener names such as
    `banks_above_trend` are one long word otherwise, and would widen their column on a phone."""
    return html.escape(value).replace("_", "_<wbr>")


# Phone first: the page never scrolls sideways and the charts shrink to the width. On a phone
# the tables wrap their text (a group name takes two lines) in a smaller type, so that the
# report's widest tables (industry groups, screener hits with their sparklines) fit 390 px; a
# table that still does not (a screeners file with many long names) scrolls in its own box.
_PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
<style>
body {{ font-family: system-ui, -apple-system, "Segoe UI", sans-serif; max-width: 60rem;
  margin: 1rem auto; padding: 0 0.8rem; color: #222; line-height: 1.4; }}
h1 {{ font-size: 1.5rem; }} h2 {{ font-size: 1.15rem; margin-top: 1.6rem; }}
.scroll {{ overflow-x: auto; }}
table.data {{ border-collapse: collapse; margin: 0.5rem 0; font-variant-numeric: tabular-nums; }}
table.data th, table.data td {{ padding: 0.2rem 0.6rem; border-bottom: 1px solid #ddd;
  text-align: left; white-space: nowrap; vertical-align: middle; }}
.figures {{ display: flex; flex-wrap: wrap; gap: 0.5rem 1.5rem; }}
.figure {{ flex: 1 1 20rem; max-width: 42rem; }}
.figure svg.chart, .figure img {{ width: 100%; height: auto; display: block; }}
svg.chart {{ font-family: system-ui, sans-serif; }}
svg.spark {{ width: 120px; height: 24px; display: block; }}
@media (max-width: 600px) {{
  body {{ font-size: 14px; padding: 0 0.5rem; }}
  table.data {{ font-size: 13px; }}
  table.data th, table.data td {{ padding: 0.15rem 0.2rem; white-space: normal; }}
  svg.spark {{ width: 56px; height: 18px; }}
}}
</style>
</head>
<body>
{body}
</body>
</html>
"""
