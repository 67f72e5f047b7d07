"""The jobs: what runs together.

- `asx_daily_refresh` materialises *every* daily asset for one session: the selection is all assets
  minus `intraday_quotes`, so assets added later (indicators, breadth, screeners, reports) join
  the daily run without touching this file. One run per session keeps the day consistent: Dagster
  orders the steps by the asset graph, and a step whose upstream failed is not run.
- `asx_core` is the core tables alone: the demo's history load, and loading prices for a range
  by hand.
- `asx_intraday_snapshot` takes one intraday snapshot (schedules.py says when).

Retries (retries.py) and concurrency (dagster.yaml): steps that call Yahoo retry with
exponential backoff and jitter; the run queue allows one run per partition key at a time and
one backfill run at a time.
"""

from dagster import AssetKey, AssetSelection, define_asset_job

DAILY_JOB = "asx_daily_refresh"
INTRADAY_JOB = "asx_intraday_snapshot"
INTRADAY_ASSET = AssetKey("intraday_quotes")
PRICE_ASSETS = frozenset({AssetKey("daily_prices"), AssetKey("corporate_actions")})

DAILY_ASSETS = AssetSelection.all() - AssetSelection.assets(INTRADAY_ASSET)

asx_core = define_asset_job(
    name="asx_core",
    selection=AssetSelection.assets("asx_symbols", "daily_prices", "corporate_actions"),
    description="The ASX directory, daily prices and corporate actions for a range of sessions.",
)
asx_daily_refresh = define_asset_job(
    name=DAILY_JOB,
    selection=DAILY_ASSETS,
    description="Every daily asset (all but intraday_quotes) for one session or a range.",
)
asx_intraday_snapshot = define_asset_job(
    name=INTRADAY_JOB,
    selection=AssetSelection.assets(INTRADAY_ASSET),
    description="One intraday snapshot of last price, change and volume.",
)

JOBS = [asx_core, asx_daily_refresh, asx_intraday_snapshot]
