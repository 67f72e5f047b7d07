"""The Dagster web UI in a real headless Chromium: find the assets, materialise a day, backfill.

`dagster-webserver` (on a free port) and `dagster-daemon` (which dequeues the UI's runs and runs
backfills) start with a temporary DAGSTER_HOME, sample data and the embedded DuckDB warehouse, on
the test code location (e2e_location.py, the real assets without the test schedule). Chromium is
Debian's (`apt-get install -y chromium`), driven by Playwright's Python package; Playwright's own
browser download is never used.

Screenshots are saved under test-output/webserver_e2e/ (gitignored), one per step.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from dagster import DagsterRunStatus, RunsFilter

from asx_pipeline_tests.deploy.stack import (
    REPO,
    UNIVERSE_SIZE,
    E2EStack,
    free_port,
    sample_closes,
    wait_for,
)

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
SCREENSHOTS = REPO / "test-output" / "webserver_e2e"
ONE_SESSION = dt.date(2025, 6, 2)
# Five sessions: 2025-06-09 is the King's Birthday holiday, so the range spans a week and a day.
BACKFILL_FIRST, BACKFILL_LAST = dt.date(2025, 6, 3), dt.date(2025, 6, 10)
BACKFILL_SESSIONS = 5
STARTUP_SECONDS = 90
RUN_SECONDS = 90
FINISHED = {DagsterRunStatus.SUCCESS, DagsterRunStatus.FAILURE, DagsterRunStatus.CANCELED}


def _browser_required() -> bool:
    """CI (ASX_REQUIRE_POSTGRES=1) or ASX_REQUIRE_BROWSER=1: a missing browser fails the test."""
    return "1" in (os.environ.get("ASX_REQUIRE_BROWSER"), os.environ.get("ASX_REQUIRE_POSTGRES"))


def _require_browser() -> None:
    missing = []
    if not CHROMIUM.exists():
        missing.append(f"{CHROMIUM} (sudo apt-get install -y chromium)")
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        missing.append("the playwright Python package (pip install -e '.[test]')")
    if not missing:
        return
    reason = "web UI end-to-end test needs " + " and ".join(missing)
    if _browser_required():
        pytest.fail(reason + " (required under CI: ASX_REQUIRE_POSTGRES/ASX_REQUIRE_BROWSER=1)")
    pytest.skip(reason)


def _location_loaded(base_url: str) -> bool:
    """True once the webserver has loaded the code location (it answers HTTP before that)."""
    query = (
        "{ workspaceOrError { ... on Workspace { locationEntries { name loadStatus "
        "locationOrLoadError { __typename } } } } }"
    )
    request = urllib.request.Request(
        f"{base_url}/graphql",
        data=json.dumps({"query": query}).encode(),
        headers={"Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            body = json.load(response)
    except (urllib.error.URLError, OSError, ValueError):
        return False
    entries = body.get("data", {}).get("workspaceOrError", {}).get("locationEntries") or []
    return bool(entries) and all(
        entry["loadStatus"] == "LOADED"
        and (entry["locationOrLoadError"] or {}).get("__typename") == "RepositoryLocation"
        for entry in entries
    )


def _expected_assets() -> set[str]:
    from asx_pipeline_tests.deploy.e2e_location import defs

    return {key.to_user_string() for key in defs.resolve_asset_graph().get_all_asset_keys()}


class UI:
    """The steps a person takes in the browser, each ending with a screenshot."""

    def __init__(self, page, base_url: str, shots: Path) -> None:
        self.page = page
        self.base_url = base_url
        self.shots = shots
        self.taken: list[Path] = []

    def goto(self, path: str) -> None:
        self.page.goto(self.base_url + path)

    def screenshot(self, name: str) -> None:
        path = self.shots / f"{len(self.taken) + 1:02d}-{name}.png"
        self.page.screenshot(path=str(path), full_page=True)
        self.taken.append(path)

    def launch_partitions(self, selection: str, launch_button: str) -> str:
        """In the open "Materialize…" dialog: type the partitions, launch; the toast's link."""
        dialog = self.page.get_by_role("dialog")
        # The dialog offers the last 90 days first (the partitions start in 2020, so there are
        # always older ones); the 2025 sessions are older.
        dialog.get_by_role("button", name="Show all partitions").click()
        dialog.get_by_text("All time").wait_for()
        partitions = dialog.get_by_role("textbox").first
        partitions.fill(selection)
        partitions.press("Enter")
        dialog.get_by_role("button", name=launch_button).click()
        view = self.page.get_by_role("link", name="View", exact=True).last
        view.wait_for()
        return view.get_attribute("href") or ""

    def materialise_one_partition(self, asset: str, day: dt.date) -> str:
        """From the asset's page: Materialize…, one session, Launch 1 run; returns the run id."""
        self.goto(f"/assets/{asset}")
        self.page.get_by_role("button", name="Materialize…").click()
        href = self.launch_partitions(day.isoformat(), "Launch 1 run")
        self.screenshot(f"{asset}-launched")
        assert href.startswith("/runs/"), href
        return href.removeprefix("/runs/")


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_web_ui_finds_assets_materialises_a_day_and_backfills_in_one_run(tmp_path) -> None:
    _require_browser()
    from playwright.sync_api import sync_playwright

    shots = SCREENSHOTS
    shutil.rmtree(shots, ignore_errors=True)
    shots.mkdir(parents=True)
    stack = E2EStack(tmp_path, schedule=False)
    instance = stack.instance()
    port = free_port()
    base_url = f"http://127.0.0.1:{port}"

    def logs() -> str:
        return (
            f"--- webserver ---\n{stack.log_tail('dagster-webserver')}\n"
            f"--- daemon ---\n{stack.log_tail('dagster-daemon')}"
        )

    def wait_for_run(run_id: str):
        def finished():
            run = instance.get_run_by_id(run_id)
            return run if run is not None and run.status in FINISHED else None

        run = wait_for(finished, timeout=RUN_SECONDS, what=f"run {run_id}", diagnostics=logs)
        assert run.status == DagsterRunStatus.SUCCESS, logs()
        return run

    try:
        with (
            stack.daemon() as daemon,
            stack.webserver(port) as webserver,
            sync_playwright() as playwright,
        ):
            wait_for(
                lambda: _location_loaded(base_url),
                timeout=STARTUP_SECONDS,
                what="the webserver to load the code location",
                alive=webserver,
                diagnostics=logs,
            )
            browser = playwright.chromium.launch(
                executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, timeout=60_000
            )
            try:
                page = browser.new_page(viewport={"width": 1600, "height": 1000})
                page.set_default_timeout(30_000)
                ui = UI(page, base_url, shots)

                # 1. The asset graph shows every asset of the code location.
                ui.goto("/asset-groups")
                graph = page.locator("svg")
                graph.get_by_text("market_data", exact=True).first.wait_for()
                page.keyboard.press("Alt+KeyE")  # the graph's "Expand all groups"
                expected = _expected_assets()
                assert len(expected) >= 8
                for asset in sorted(expected):
                    graph.get_by_text(asset, exact=True).first.wait_for()
                ui.screenshot("asset-graph")

                # 2. One session of daily_prices, launched from its page. Its upstream
                # asx_symbols is launched the same way first (daily_prices refuses a day without
                # symbols, and the UI warns about it).
                symbols_run = ui.materialise_one_partition("asx_symbols", ONE_SESSION)
                wait_for_run(symbols_run)
                prices_run_id = ui.materialise_one_partition("daily_prices", ONE_SESSION)
                prices_run = wait_for_run(prices_run_id)
                assert prices_run.tags["dagster/partition"] == ONE_SESSION.isoformat()
                ui.goto(f"/runs/{prices_run_id}")
                page.get_by_text("Success", exact=True).first.wait_for()
                page.get_by_text("Loading run logs…").wait_for(state="hidden")
                ui.screenshot("daily-prices-run-succeeded")
                prices = stack.read("daily_prices", ONE_SESSION, ONE_SESSION)
                assert len(prices) == UNIVERSE_SIZE
                stored = dict(zip(prices["symbol"], prices["close"], strict=True))
                assert stored == pytest.approx(sample_closes(sorted(stored), ONE_SESSION))

                # 3. A backfill of five sessions of the market_data group runs as ONE run.
                ui.goto(
                    "/locations/asx_pipeline_tests.deploy.e2e_location/asset-groups/market_data"
                )
                page.get_by_role("button", name="Materialize all…").click()
                # For several assets the dialog says "varying backfill policies" even when all
                # are single-run (dagster UI 1.13 compares the policies by object identity); the
                # runs of the backfill are what count.
                ui.launch_partitions(
                    f"[{BACKFILL_FIRST.isoformat()}...{BACKFILL_LAST.isoformat()}]",
                    "Launch backfill",
                )
                ui.screenshot("backfill-launched")

                (backfill,) = instance.get_backfills()
                backfill_runs = RunsFilter(tags={"dagster/backfill": backfill.backfill_id})

                def finished_backfill_run():
                    runs = instance.get_runs(backfill_runs)
                    return next((run for run in runs if run.status in FINISHED), None)

                run = wait_for(
                    finished_backfill_run,
                    timeout=RUN_SECONDS,
                    what="the backfill's run to finish",
                    interval=2,
                    alive=daemon,
                    diagnostics=logs,
                )
                assert run.status == DagsterRunStatus.SUCCESS, logs()
                assert run.tags["dagster/asset_partition_range_start"] == "2025-06-03"
                assert run.tags["dagster/asset_partition_range_end"] == "2025-06-10"
                # ONE run: it was the only run launched, and it already requested every targeted
                # (asset, session) pair, so the backfill has nothing left to launch. (Waiting for
                # the backfill's own COMPLETED status costs another 30 s daemon interval.)
                assert [r.run_id for r in instance.get_runs(backfill_runs)] == [run.run_id]
                progress = instance.get_backfill(backfill.backfill_id).asset_backfill_data
                targeted = set(progress.target_subset.iterate_asset_partitions())
                assert len(targeted) == 3 * BACKFILL_SESSIONS
                assert set(progress.requested_subset.iterate_asset_partitions()) == targeted
                ui.goto(f"/runs/b/{backfill.backfill_id}?tab=runs")
                page.get_by_text(run.run_id[:8]).first.wait_for()
                ui.screenshot("backfill-one-run")
            except Exception:
                # What the browser showed when it went wrong, next to the step screenshots.
                page.screenshot(path=str(shots / "failure.png"), full_page=True)
                raise
            finally:
                browser.close()

        backfilled = stack.read("daily_prices", BACKFILL_FIRST, BACKFILL_LAST)
        assert len(backfilled) == BACKFILL_SESSIONS * UNIVERSE_SIZE
        assert backfilled["trade_date"].nunique() == BACKFILL_SESSIONS
        assert dt.date(2025, 6, 9) not in set(backfilled["trade_date"])
        assert len(stack.read("asx_symbols", BACKFILL_FIRST, BACKFILL_LAST)) == len(backfilled)
        assert [path.name for path in sorted(shots.glob("*.png"))] == [
            "01-asset-graph.png",
            "02-asx_symbols-launched.png",
            "03-daily_prices-launched.png",
            "04-daily-prices-run-succeeded.png",
            "05-backfill-launched.png",
            "06-backfill-one-run.png",
        ]
    finally:
        instance.dispose()
