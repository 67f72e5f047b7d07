"""`daily_report`: a readable summary of each session, in the UI and as an HTML file.

The Markdown of the (last) session is the materialisation's metadata, so the UI shows it; every
session also gets `ASX_DATA_DIR/reports/asx-daily-report-YYYY-MM-DD.html`, self-contained with
its chart embedded as a PNG. The table row records the title, the Markdown and the file's path.
"""

import datetime as dt
import os
from pathlib import Path

import pandas as pd
from dagster import (
    AssetExecutionContext,
    ConfigurableResource,
    MetadataValue,
    Output,
)

from asx_pipeline.analytics import quality
from asx_pipeline.analytics.report import (
    SessionData,
    build_sections,
    render_chart,
    render_html,
    render_markdown,
    report_title,
)
from asx_pipeline.analytics.universe import in_universe
from asx_pipeline.assets.daily import daily_table_asset
from asx_pipeline.assets.metadata import session_span
from asx_pipeline.calendar import span_of
from asx_pipeline.warehouse.tables import DAILY_REPORT


class ReportsResource(ConfigurableResource):
    """Where the HTML reports are written (ASX_DATA_DIR/reports by default)."""

    directory: str = "data/reports"

    def path_for(self, trade_date: dt.date) -> Path:
        return Path(self.directory) / f"asx-daily-report-{trade_date.isoformat()}.html"


def session_warnings(
    prices: pd.DataFrame, symbols: pd.DataFrame, actions: pd.DataFrame, indicators: pd.DataFrame
) -> list[str]:
    """The data-quality rules of checks.py applied to one session, as sentences."""
    findings = [
        quality.non_positive_prices(prices),
        quality.inconsistent_ohlc(prices),
        quality.negative_volume(prices),
        quality.low_coverage(prices, symbols),
        quality.implausible_actions(actions, prices),
    ]
    warnings = [f.summary + _examples(f) for f in findings if not f.passed]
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


def _on(frame: pd.DataFrame, column: str, day: dt.date) -> pd.DataFrame:
    return frame[frame[column] == day] if not frame.empty else frame


def _write_atomically(path: Path, text: str) -> None:
    """A reader never sees half a report: write beside it, then rename over it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".html.partial")
    partial.write_text(text, encoding="utf-8")
    os.replace(partial, path)


@daily_table_asset(
    DAILY_REPORT,
    "analytics",
    kinds={"pandas", "html"},
)
def daily_report(
    context: AssetExecutionContext,
    reports: ReportsResource,
    market_breadth: pd.DataFrame,
    screener_results: pd.DataFrame,
    daily_indicators: pd.DataFrame,
    daily_prices: pd.DataFrame,
    corporate_actions: pd.DataFrame,
    asx_symbols: pd.DataFrame,
) -> Output[pd.DataFrame]:
    window, sessions = span_of(context.partition_time_window)
    # Rows of symbols that left a session's universe stay stored; the report is of the universe.
    daily_indicators = in_universe(daily_indicators, asx_symbols)
    daily_prices = in_universe(daily_prices, asx_symbols)
    days = sorted(set(daily_indicators["trade_date"])) if not daily_indicators.empty else []
    rows = []
    for day in days:
        breadth = _on(market_breadth, "trade_date", day)
        indicators = _on(daily_indicators, "trade_date", day)
        prices = _on(daily_prices, "trade_date", day)
        actions = _on(corporate_actions, "ex_date", day)
        data = SessionData(
            trade_date=day,
            breadth=breadth.iloc[0] if not breadth.empty else None,
            indicators=indicators,
            prices=prices,
            screener_hits=_on(screener_results, "trade_date", day),
            actions=actions,
            warnings=session_warnings(
                prices, _on(asx_symbols, "as_of_date", day), actions, indicators
            ),
        )
        title = report_title(day)
        sections = build_sections(data)
        markdown = render_markdown(title, sections)
        path = reports.path_for(day)
        _write_atomically(path, render_html(title, sections, render_chart(indicators, title)))
        rows.append(
            {
                "trade_date": day,
                "title": title,
                "markdown": markdown,
                "html_path": str(path.resolve()),
            }
        )
    frame = pd.DataFrame(rows, columns=DAILY_REPORT.column_names)
    metadata: dict[str, object] = {"reports_written": len(frame), **session_span(sessions)}
    if rows:
        metadata["report"] = MetadataValue.md(rows[-1]["markdown"])
        metadata["html_path"] = MetadataValue.path(rows[-1]["html_path"])
    else:
        context.log.warning(f"No daily_indicators for {window}: no report was written.")
    return Output(frame, metadata=metadata)
