"""`daily_report`: a readable summary of each session, in the UI, as an HTML file, by mail.

The Markdown of the (last) session is the materialisation's metadata, so the UI shows it; every
session also gets `ASX_DATA_DIR/reports/asx-daily-report-YYYY-MM-DD.html`, self-contained with
its charts as inline SVG. The table row records the title, the Markdown and the file's path.
With ASX_REPORT_EMAIL set, the scheduled (or `asx-pipeline daily`) run of the latest session
mails its report: the same page with the charts as attached PNGs, and the Markdown as plain text.

The report looks back HISTORY_SESSIONS sessions (breadth, sparklines, 20-session returns) and
ahead UPCOMING_ACTION_SESSIONS for corporate actions already stored; the partition mappings say
so, and a range run builds every session's data in one pass (analytics/report.py).
"""

import datetime as dt
import html
import os
from pathlib import Path

import pandas as pd
from dagster import (
    AssetExecutionContext,
    AssetIn,
    AssetKey,
    AssetRecordsFilter,
    ConfigurableResource,
    DagsterInstance,
    MetadataValue,
    Output,
    TimeWindowPartitionMapping,
)

from asx_pipeline.analytics.charts import Chart, to_png, to_svg
from asx_pipeline.analytics.report import (
    HISTORY_SESSIONS,
    RECENT_ACTION_SESSIONS,
    UPCOMING_ACTION_SESSIONS,
    ReportInputs,
    ReportSection,
    build_sections,
    render_html,
    render_markdown,
    report_title,
)
from asx_pipeline.analytics.universe import in_universe
from asx_pipeline.assets.daily import daily_table_asset
from asx_pipeline.assets.metadata import FAILED_SYMBOLS, REFUSED_BARS, session_span
from asx_pipeline.calendar import partition_key, sessions_between, span_of
from asx_pipeline.report_mail import MailedReport, ReportMailResource, mail_requested
from asx_pipeline.warehouse.tables import DAILY_REPORT

HISTORY = TimeWindowPartitionMapping(
    start_offset=-(HISTORY_SESSIONS - 1), allow_nonexistent_upstream_partitions=True
)
# Calendar days that hold the look-back and look-ahead sessions of corporate actions.
_MARGIN = dt.timedelta(days=45)
ACTIONS_AROUND = TimeWindowPartitionMapping(
    start_offset=-(RECENT_ACTION_SESSIONS - 1),
    end_offset=UPCOMING_ACTION_SESSIONS,
    allow_nonexistent_upstream_partitions=True,
)


class ReportsResource(ConfigurableResource):
    """Where the HTML reports are written (ASX_DATA_DIR/reports by default)."""

    directory: str = "data/reports"

    def path_for(self, trade_date: dt.date) -> Path:
        return Path(self.directory) / f"asx-daily-report-{trade_date.isoformat()}.html"


def ingestion_notes(
    instance: DagsterInstance, sessions: list[dt.date]
) -> dict[dt.date, tuple[list[str], list[str]]]:
    """Per session, the tickers the latest `daily_prices` materialisation of it could not fetch
    and the bars it refused as junk (what ingestion recorded; rows kept from before)."""
    wanted = {partition_key(day): day for day in sessions}
    notes: dict[dt.date, tuple[list[str], list[str]]] = {}
    cursor = None
    while len(notes) < len(wanted):
        page = instance.fetch_materializations(
            AssetRecordsFilter(
                asset_key=AssetKey("daily_prices"), asset_partitions=list(wanted)
            ),
            limit=1000,
            cursor=cursor,
        )
        for record in page.records:  # newest first: the first one of a session is its latest
            day = wanted.get(record.partition_key or "")
            materialization = record.asset_materialization
            if day is None or day in notes or materialization is None:
                continue
            refused = _bullets(materialization.metadata.get(REFUSED_BARS))
            notes[day] = (
                _bullets(materialization.metadata.get(FAILED_SYMBOLS)),
                [line for line in refused if f" {day.isoformat()}:" in line],
            )
        if not page.has_more:
            break
        cursor = page.cursor
    return notes


def _bullets(value: object) -> list[str]:
    text = str(getattr(value, "value", value) or "")
    return [line[2:] for line in text.splitlines() if line.startswith("- ")]


def _write_atomically(path: Path, text: str) -> None:
    """A reader never sees half a report: write beside it, then rename over it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".html.partial")
    partial.write_text(text, encoding="utf-8")
    os.replace(partial, path)


class _Attachments:
    """Embeds charts in the mail as <img> of attached PNGs (web mail strips inline SVG)."""

    def __init__(self) -> None:
        self.images: dict[str, bytes] = {}

    def __call__(self, chart: Chart) -> str:
        self.images[chart.name] = to_png(chart)
        css = ' class="spark"' if chart.css == "spark" else ""
        return (
            f'<img src="cid:{chart.name}" width="{chart.width}" height="{chart.height}"{css} '
            f'alt="{html.escape(chart.label)}">'
        )


@daily_table_asset(
    DAILY_REPORT,
    "analytics",
    kinds={"pandas", "html"},
    ins={
        "market_breadth": AssetIn(partition_mapping=HISTORY),
        "daily_indicators": AssetIn(partition_mapping=HISTORY),
        "corporate_actions": AssetIn(partition_mapping=ACTIONS_AROUND),
    },
)
def daily_report(
    context: AssetExecutionContext,
    reports: ReportsResource,
    report_mail: ReportMailResource,
    market_breadth: pd.DataFrame,
    screener_results: pd.DataFrame,
    daily_indicators: pd.DataFrame,
    daily_prices: pd.DataFrame,
    corporate_actions: pd.DataFrame,
    asx_symbols: pd.DataFrame,
) -> Output[pd.DataFrame]:
    window, sessions = span_of(context.partition_time_window)
    # Rows of symbols that left a session's universe stay stored; the report is of the universe.
    in_window = daily_indicators[daily_indicators["trade_date"].isin(set(sessions))]
    inputs = ReportInputs(
        sessions=sessions,
        calendar=sessions_between(sessions[0] - _MARGIN, sessions[-1] + _MARGIN),
        indicators_history=daily_indicators,
        indicators=in_universe(in_window, asx_symbols),
        breadth=market_breadth,
        prices=in_universe(daily_prices, asx_symbols),
        hits=screener_results,
        actions=corporate_actions,
        symbols=asx_symbols,
        ingestion=ingestion_notes(context.instance, sessions),
    )
    days = sorted(set(in_window["trade_date"]))
    rows, last_sections = [], []
    for day in days:
        title = report_title(day)
        last_sections = build_sections(inputs.session(day))
        path = reports.path_for(day)
        _write_atomically(path, render_html(title, last_sections, to_svg))
        rows.append(
            {
                "trade_date": day,
                "title": title,
                "markdown": render_markdown(title, last_sections),
                "html_path": str(path.resolve()),
            }
        )
    frame = pd.DataFrame(rows, columns=DAILY_REPORT.column_names)
    metadata: dict[str, object] = {"reports_written": len(frame), **session_span(sessions)}
    if rows:
        metadata["report"] = MetadataValue.md(rows[-1]["markdown"])
        metadata["html_path"] = MetadataValue.path(rows[-1]["html_path"])
        if mail_requested(context.run.tags, sessions) and report_mail.recipients():
            metadata |= _mail(context, report_mail, rows[-1], last_sections)
    else:
        context.log.warning(f"No daily_indicators for {window}: no report was written.")
    return Output(frame, metadata=metadata)


def _mail(
    context: AssetExecutionContext,
    report_mail: ReportMailResource,
    row: dict[str, object],
    sections: list[ReportSection],
) -> dict[str, object]:
    """Mail the session's report; a failure is logged and recorded, never fails the run."""
    attachments = _Attachments()
    page = render_html(str(row["title"]), sections, attachments)
    reason = report_mail.send(
        MailedReport(
            trade_date=row["trade_date"],
            subject=str(row["title"]),
            html=page,
            text=str(row["markdown"]),
            images=attachments.images,
        )
    )
    recipients = ", ".join(report_mail.recipients())
    if reason:
        context.log.warning(f"The report was not mailed to {recipients}: {reason}")
        return {"mailed": False, "mail_error": reason}
    context.log.info(f"Mailed the report to {recipients}")
    return {"mailed": True, "mailed_to": recipients}
