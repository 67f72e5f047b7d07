"""daily_report: Markdown in the metadata and the table, a self-contained HTML file with an
inline SVG chart drawn from the data."""

from __future__ import annotations

import datetime as dt
import re

import pandas as pd

from asx_pipeline_tests.analytics.history import copy_of, fill_core_tables

DAY = dt.date(2025, 11, 10)  # PME's 2:1 split: a corporate action to report


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
    # The chart is inline SVG drawn from the data: one bar per histogram bin, whose counts add
    # up to the symbols with a return; one bar per mover, the day's best and worst five.
    (svg,) = re.findall(r"<svg .*?</svg>", page, flags=re.DOTALL)
    counts = [int(c) for c in re.findall(r'<rect class="bin".*?<title>[^<]*: (\d+)</title>', svg)]
    returns = indicators.dropna(subset=["return_1d"]).sort_values(["return_1d", "symbol"])
    assert sum(counts) == len(returns) and len(counts) >= 5
    movers = re.findall(r'<rect class="mover".*?<title>([^:]+): ([^%]+)%</title>', svg)
    expected = pd.concat([returns.head(5), returns.tail(5)])
    assert [symbol for symbol, _ in movers] == list(expected["symbol"])
    assert [float(move) for _, move in movers] == [
        round(r * 100, 2) for r in expected["return_1d"]
    ]
    assert 'class="median"' in svg
    assert "<h2>Market breadth</h2>" in page and "http" not in page.split("<body>")[1]

    materialization = result.asset_materializations_for_node("daily_report")[0]
    assert materialization.metadata["report"].value == markdown
    assert materialization.metadata["html_path"].value == str(html_file.resolve())
