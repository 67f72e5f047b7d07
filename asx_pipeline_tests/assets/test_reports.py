"""daily_report: Markdown in the metadata and the table, a self-contained HTML file whose charts
are drawn from the data, the same reports from a range run as from day-by-day runs, what
ingestion could not fetch in the data-quality section, and how the page looks in Chromium."""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from dagster import AssetKey, AssetMaterialization, MetadataValue

from asx_pipeline.analytics.report import GROUP_RETURN_SESSIONS, HISTORY_SESSIONS
from asx_pipeline.assets.metadata import FAILED_SYMBOLS, REFUSED_BARS
from asx_pipeline.calendar import partition_key, session_before, sessions_between
from asx_pipeline.report_mail import MAIL_REPORT_TAG, ReportMailResource
from asx_pipeline.settings import Settings, load_settings
from asx_pipeline_tests.analytics.history import AnalyticsWarehouse, copy_of, fill_core_tables
from asx_pipeline_tests.smtp_server import free_port, smtp_server_running

DAY = dt.date(2025, 11, 10)  # PME's 2:1 split: a corporate action to report
REPO = Path(__file__).resolve().parents[2]
SCREENSHOTS = REPO / "test-output" / "report"
DERIVED = ["daily_indicators", "market_breadth", "screener_results", "daily_report"]


@pytest.fixture(scope="module")
def core(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("core") / "core.duckdb"
    fill_core_tables(path, first=dt.date(2024, 9, 2))
    return path


@pytest.fixture(scope="module")
def reported(core, tmp_path_factory) -> AnalyticsWarehouse:
    """The derived tables over the 70 sessions up to DAY, in one run."""
    warehouse = copy_of(core, tmp_path_factory.mktemp("reported"))
    first = session_before(DAY, HISTORY_SESSIONS + 9)
    assert warehouse.materialize(DERIVED, first, DAY).success
    return warehouse


def _section(markdown: str, heading: str) -> str:
    return markdown.split(f"## {heading}")[1].split("\n## ")[0]


def _svg(page: str, name: str) -> str:
    (svg,) = re.findall(rf'<svg [^>]*data-chart="{name}".*?</svg>', page, flags=re.DOTALL)
    return svg


def test_report_renders_with_the_days_numbers(reported) -> None:
    row = reported.read("daily_report", DAY, DAY).iloc[0]
    breadth = reported.read("market_breadth", DAY, DAY).iloc[0]
    indicators = reported.read("daily_indicators", DAY, DAY)
    markdown = row["markdown"]
    assert row["title"] == "ASX daily report: Monday 10 November 2025"
    assert markdown.startswith("# ASX daily report: Monday 10 November 2025")
    counts = f"{breadth['advancers']} / {breadth['decliners']} / {breadth['unchanged']}"
    assert counts in markdown
    assert f"{breadth['median_return']:+.2%}" in markdown
    best = indicators.sort_values("return_1d", ascending=False).iloc[0]
    movement = re.escape(f"{best['return_1d']:+.2%}")
    assert re.search(rf"\| {best['symbol']}\s+\| {movement}", markdown)
    recent = _section(markdown, "Corporate actions: this session")
    assert re.search(r"\| 2025-11-10\s+\| PME\s+\| split\s+\| 2 new per old\s*\|", recent)
    hits = reported.read("screener_results", DAY, DAY)
    for screener, count in hits.groupby("screener").size().items():
        assert f"- {screener}: {count} hit(s)" in markdown

    html_file = reported.reports_dir / "asx-daily-report-2025-11-10.html"
    assert row["html_path"] == str(html_file.resolve())
    page = html_file.read_text()
    # One bar per histogram bin, whose counts add up to the symbols with a return; one bar per
    # mover, the day's worst and best five.
    svg = _svg(page, "returns")
    counts = [int(c) for c in re.findall(r'<rect class="bin".*?<title>[^<]*: (\d+)</title>', svg)]
    returns = indicators.dropna(subset=["return_1d"]).sort_values(["return_1d", "symbol"])
    assert sum(counts) == len(returns) and len(counts) >= 5
    movers = re.findall(
        r'<rect class="mover".*?<title>([^:]+): ([^%]+)%</title>', _svg(page, "movers")
    )
    expected = pd.concat([returns.head(5), returns.tail(5)])
    assert [symbol for symbol, _ in movers] == list(expected["symbol"])
    assert [float(move) for _, move in movers] == [
        round(r * 100, 2) for r in expected["return_1d"]
    ]
    assert 'class="median"' in svg
    assert "<h2>Market breadth</h2>" in page and "http" not in page.split("<body>")[1]

    materialization = reported.instance.get_latest_materialization_event(
        AssetKey("daily_report")
    ).asset_materialization
    assert materialization.metadata["report"].value == markdown


def test_breadth_over_the_last_sixty_sessions(reported) -> None:
    first = session_before(DAY, HISTORY_SESSIONS - 1)
    breadth = reported.read("market_breadth", first, DAY)
    assert len(breadth) == HISTORY_SESSIONS
    page = (reported.reports_dir / "asx-daily-report-2025-11-10.html").read_text()
    svg = _svg(page, "breadth")
    bars = re.findall(r'<rect class="net".*?<title>([^:]+): ([+-]\d+)</title>', svg)
    assert bars == [
        (str(day), f"{a - d:+d}")
        for day, a, d in zip(
            breadth["trade_date"], breadth["advancers"], breadth["decliners"], strict=True
        )
    ]
    (points,) = re.findall(r'<polyline class="above-sma" points="([^"]+)"', svg)
    heights = [float(p.split(",")[1]) for p in points.split()]
    shares = breadth["pct_above_sma_200"].dropna().to_numpy()
    assert len(heights) == len(shares)
    # Higher share, higher on the page (smaller y): the line follows the numbers' order.
    assert np.array_equal(np.argsort(-shares, kind="stable"), np.argsort(heights, kind="stable"))


def test_industry_groups_for_the_day_and_twenty_sessions(reported) -> None:
    sessions = sessions_between(session_before(DAY, GROUP_RETURN_SESSIONS - 1), DAY)
    indicators = reported.read("daily_indicators", sessions[0], DAY)
    symbols = reported.read("asx_symbols", DAY, DAY)[["symbol", "gics_industry_group"]]
    returns = indicators.pivot(index="trade_date", columns="symbol", values="return_1d")
    twenty = (1 + returns).prod(skipna=False) - 1
    today = indicators[indicators["trade_date"] == DAY].merge(symbols, on="symbol")
    today = today.assign(sessions_20=today["symbol"].map(twenty))
    expected = today.groupby("gics_industry_group").agg(
        day=("return_1d", "mean"), sessions_20=("sessions_20", "mean"), symbols=("symbol", "size")
    )
    markdown = reported.read("daily_report", DAY, DAY).iloc[0]["markdown"]
    section = _section(markdown, "Industry groups")
    for group, row in expected.iterrows():
        line = next(line for line in section.splitlines() if line.startswith(f"| {group} "))
        cells = [cell.strip() for cell in line.strip("|").split("|")]
        assert cells == [group, str(int(row["symbols"])), f"{row['day']:+.2%}",
                         f"{row['sessions_20']:+.2%}"]  # fmt: skip
    page = (reported.reports_dir / "asx-daily-report-2025-11-10.html").read_text()
    assert len(re.findall(r'class="group-day"', _svg(page, "groups"))) == len(expected)


def test_each_screener_hit_has_a_sparkline_of_its_last_sessions(reported) -> None:
    hits = reported.read("screener_results", DAY, DAY)
    shown = hits[hits["rank"] <= 5].sort_values(["screener", "rank"])
    assert len(shown) > 0
    page = (reported.reports_dir / "asx-daily-report-2025-11-10.html").read_text()
    sparks = re.findall(r'<svg [^>]*class="spark" data-chart="spark-\d+-([^"]+)">(.*?)</svg>',
                        page, flags=re.DOTALL)  # fmt: skip
    assert [symbol for symbol, _ in sparks] == list(shown["symbol"])
    first = session_before(DAY, HISTORY_SESSIONS - 1)
    indicators = reported.read("daily_indicators", first, DAY)
    for symbol, svg in sparks:
        (points,) = re.findall(r'points="([^"]+)"', svg)
        ys = [float(p.split(",")[1]) for p in points.split()]
        assert len(ys) == HISTORY_SESSIONS
        growth = indicators[indicators["symbol"] == symbol].sort_values("trade_date")["return_1d"]
        path = np.cumprod(1 + growth.fillna(0).to_numpy())
        # The line's lowest and highest points are the path's (y grows downwards).
        assert int(np.argmax(ys)) == int(np.argmin(path))
        assert int(np.argmin(ys)) == int(np.argmax(path))
    markdown = reported.read("daily_report", DAY, DAY).iloc[0]["markdown"]
    assert re.search(r"\| [▁▂▃▄▅▆▇█]{20} [+-]\d+\.\d%", _section(markdown, "Screener hits"))


def test_upcoming_corporate_actions_as_stored(reported) -> None:
    before = session_before(DAY, 3)
    markdown = reported.read("daily_report", before, before).iloc[0]["markdown"]
    upcoming = _section(markdown, "Corporate actions: the next")
    assert re.search(r"\| 2025-11-10\s+\| PME\s+\| split\s+\| 2 new per old\s*\|", upcoming)
    assert "PME" not in _section(markdown, "Corporate actions: this session")


def test_range_run_writes_the_reports_day_by_day_runs_write(core, tmp_path) -> None:
    sessions = sessions_between(dt.date(2025, 11, 5), dt.date(2025, 11, 12))
    one_run = copy_of(core, tmp_path / "range")
    assert one_run.materialize(DERIVED, sessions[0], sessions[-1]).success
    daily = copy_of(core, tmp_path / "daily")
    for day in sessions:
        assert daily.materialize(DERIVED, day, day).success
    for table in ("market_breadth", "screener_results", "daily_report"):
        ranged = one_run.read(table, sessions[0], sessions[-1]).drop(columns="html_path",
                                                                    errors="ignore")  # fmt: skip
        by_day = daily.read(table, sessions[0], sessions[-1]).drop(columns="html_path",
                                                                  errors="ignore")  # fmt: skip
        pd.testing.assert_frame_equal(ranged, by_day, check_exact=True)
    for day in sessions:
        name = f"asx-daily-report-{day.isoformat()}.html"
        assert (one_run.reports_dir / name).read_text() == (daily.reports_dir / name).read_text()


def test_data_quality_names_what_ingestion_could_not_fetch(core, tmp_path) -> None:
    warehouse = copy_of(core, tmp_path / "quality")
    warehouse.instance.report_runless_asset_event(
        AssetMaterialization(
            asset_key="daily_prices",
            partition=partition_key(DAY),
            metadata={
                FAILED_SYMBOLS: MetadataValue.md("- XYZ: HTTP 404 from Yahoo (no such ticker)"),
                REFUSED_BARS: MetadataValue.md(
                    f"- ABC {DAY}: close 0.0 <= 0\n- ABC {session_before(DAY)}: close 0.0 <= 0"
                ),
            },
        )
    )
    assert warehouse.materialize(DERIVED, DAY, DAY).success
    markdown = warehouse.read("daily_report", DAY, DAY).iloc[0]["markdown"]
    quality = _section(markdown, "Data quality")
    assert "Not fetched, stored rows kept: XYZ: HTTP 404 from Yahoo (no such ticker)" in quality
    assert f"Refused as junk, stored rows kept: ABC {DAY}: close 0.0 <= 0\n" in quality + "\n"
    assert str(session_before(DAY)) not in quality


def test_the_page_in_chromium_on_a_desktop_and_a_phone(reported) -> None:
    """Screenshots under test-output/report/ (gitignored); a phone-width page never scrolls
    sideways and every chart and table fits the screen."""
    from asx_pipeline_tests.deploy.test_webserver_e2e import (
        CHROMIUM,
        CHROMIUM_ARGS,
        _require_browser,
    )

    _require_browser()
    from playwright.sync_api import sync_playwright

    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page_file = reported.reports_dir / "asx-daily-report-2025-11-10.html"
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            for name, width in (("desktop", 1280), ("phone", 390)):
                page = browser.new_page(viewport={"width": width, "height": 844})
                page.goto(page_file.as_uri())
                shot = SCREENSHOTS / f"daily-report-{DAY}-{name}.png"
                page.screenshot(path=str(shot), full_page=True)
                print(f"report screenshot ({name}, {width}px): {shot}")
                assert page.evaluate("document.documentElement.scrollWidth") <= width
                boxes = page.evaluate(
                    "[...document.querySelectorAll('svg.chart')].map(s => "
                    "s.getBoundingClientRect().right)"
                )
                assert len(boxes) == 4 and max(boxes) <= width
                # Every table fits too: none has to be scrolled sideways in its own box.
                overflowing = page.evaluate(
                    "[...document.querySelectorAll('.scroll')].filter(s => s.scrollWidth > "
                    "s.clientWidth).map(s => s.querySelector('th').textContent)"
                )
                assert overflowing == [], f"{name}: tables wider than the screen: {overflowing}"
                assert page.locator("svg.spark").count() > 0
                page.close()
        finally:
            browser.close()


class _MailOn(ReportMailResource):
    """The report mail resource for an SMTP server on 127.0.0.1:`port` (no login)."""

    port: int

    def settings(self) -> Settings:
        return load_settings(
            asx_smtp_host="127.0.0.1",
            asx_smtp_port=self.port,
            asx_smtp_security="none",
            asx_report_email="quant@example.com",
        )


def test_the_latest_sessions_run_mails_its_report(core, tmp_path) -> None:
    warehouse = copy_of(core, tmp_path / "mail")
    with smtp_server_running() as (mailbox, port):
        result = warehouse.materialize(
            DERIVED, DAY, DAY, tags={MAIL_REPORT_TAG: "true"},
            resources={"report_mail": _MailOn(port=port)},
        )  # fmt: skip
        assert result.success
        row = warehouse.read("daily_report", DAY, DAY).iloc[0]
        # A backfill carrying the tag (several sessions) mails nothing.
        sessions = sessions_between(dt.date(2025, 11, 3), DAY)
        ranged = warehouse.materialize(
            DERIVED, sessions[0], sessions[-1], tags={MAIL_REPORT_TAG: "true"},
            resources={"report_mail": _MailOn(port=port)},
        )  # fmt: skip
        assert ranged.success
    assert len(mailbox.messages) == 1
    message = mailbox.messages[0]
    assert message["Subject"] == row["title"]
    assert message["To"] == "quant@example.com"
    text, related = message.get_payload()
    assert text.get_content_type() == "text/plain"
    assert text.get_payload(decode=True).decode().replace("\r\n", "\n") == row["markdown"]
    page, *images = related.get_payload()
    html = page.get_payload(decode=True).decode()
    cids = re.findall(r'src="cid:([^"]+)"', html)
    assert {"breadth", "returns", "movers", "groups"} <= set(cids)
    assert sorted(cids) == sorted(image["Content-ID"].strip("<>") for image in images)
    for image in images:
        assert image.get_content_type() == "image/png"
        assert image.get_payload(decode=True).startswith(b"\x89PNG\r\n\x1a\n")
    assert "<svg" not in html  # web mail strips inline SVG: the mail has none
    assert html.split("<body>")[1].count("<h2>") == row["markdown"].count("\n## ")
    materialization = result.asset_materializations_for_node("daily_report")[0]
    assert materialization.metadata["mailed"].value is True


def test_a_mail_that_fails_is_logged_and_the_run_succeeds(core, tmp_path) -> None:
    warehouse = copy_of(core, tmp_path / "unmailed")
    closed = free_port()  # nothing listens here
    result = warehouse.materialize(
        DERIVED, DAY, DAY, tags={MAIL_REPORT_TAG: "true"},
        resources={"report_mail": _MailOn(port=closed)},
    )  # fmt: skip
    assert result.success
    metadata = result.asset_materializations_for_node("daily_report")[0].metadata
    assert metadata["mailed"].value is False
    assert "ConnectionRefusedError" in metadata["mail_error"].value
    logged = [entry.user_message for entry in warehouse.instance.all_logs(result.run_id)]
    assert any(m.startswith("The report was not mailed to quant@example.com") for m in logged)
