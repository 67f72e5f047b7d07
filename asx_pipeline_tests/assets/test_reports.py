"""daily_report: Markdown in the metadata and the table, a self-contained HTML file with a chart."""

from __future__ import annotations

import base64
import datetime as dt
import re

from asx_pipeline_tests.analytics.history import copy_of, fill_core_tables

DAY = dt.date(2025, 11, 10)  # PME's 2:1 split: a corporate action to report
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def test_report_renders_with_the_days_numbers(tmp_path) -> None:
    path = tmp_path / "core.duckdb"
    fill_core_tables(path, first=dt.date(2024, 11, 1))
    warehouse = copy_of(path, tmp_path / "run")
    selected = ["daily_indicators", "market_breadth", "screener_results", "daily_report"]
    result = warehouse.materialize(selected, DAY, DAY)
    assert result.success

    row = warehouse.read("daily_report", DAY, DAY).iloc[0]
    breadth = warehouse.read("market_breadth", DAY, DAY).iloc[0]
    indicators = warehouse.read("daily_indicators", DAY, DAY)
    markdown = row["markdown"]
    assert row["title"] == "ASX daily report: Monday 10 November 2025"
    assert markdown.startswith("# ASX daily report: Monday 10 November 2025")
    counts = f"{breadth['advancers']} / {breadth['decliners']} / {breadth['unchanged']}"
    assert counts in markdown
    assert f"{breadth['median_return']:+.2%}" in markdown
    best = indicators.sort_values("return_1d", ascending=False).iloc[0]
    movement = re.escape(f"{best['return_1d']:+.2%}")
    assert re.search(rf"\| {best['symbol']}\s+\| {movement}", markdown)
    assert "| PME      | split    | 2 new per old |" in markdown
    hits = warehouse.read("screener_results", DAY, DAY)
    for screener, count in hits.groupby("screener").size().items():
        assert f"- {screener}: {count} hit(s)" in markdown

    html_file = tmp_path / "run" / "reports" / "asx-daily-report-2025-11-10.html"
    assert row["html_path"] == str(html_file.resolve())
    page = html_file.read_text()
    embedded = re.search(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', page)
    assert embedded and base64.b64decode(embedded.group(1)).startswith(PNG_MAGIC)
    assert "<h2>Market breadth</h2>" in page and "http" not in page.split("<body>")[1]

    materialization = result.asset_materializations_for_node("daily_report")[0]
    assert materialization.metadata["report"].value == markdown
    assert materialization.metadata["html_path"].value == str(html_file.resolve())
