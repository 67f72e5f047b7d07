"""Asset checks that stop bad data before anything downstream uses it.

Each check is partitioned like the asset it checks, so it judges exactly the window a run
materialised (one session, or a whole backfill range). Structural problems (a non-positive price,
a bar outside its own range, negative volume, a duplicate key, an implausible corporate action)
fail with severity ERROR and are `blocking`: in the same run, daily_indicators and everything
after it do not run on them. Coverage below ASX_MIN_COVERAGE is blocking too: breadth, screeners
and the report on half the market would mislead. Stale quotes are WARN: worth a look, not a stop.
The rules themselves live in analytics/quality.py, shared with the daily report.
"""


import pandas as pd
from dagster import (
    AssetCheckExecutionContext,
    AssetCheckResult,
    AssetCheckSeverity,
    AssetIn,
    MetadataValue,
    asset_check,
)

from asx_pipeline.analytics import quality
from asx_pipeline.calendar import session_before, span_of
from asx_pipeline.configured import DAILY_PARTITIONS
from asx_pipeline.runs import failed_symbols_of_run
from asx_pipeline.sources.resource import MarketDataResource
from asx_pipeline.warehouse.frames import Window
from asx_pipeline.warehouse.tables import DAILY_PRICES

_SHOWN_ROWS = 20


def _result(finding: quality.Finding, severity: AssetCheckSeverity, **extra) -> AssetCheckResult:
    metadata = {"summary": finding.summary, "offending_rows": len(finding.rows), **extra}
    if not finding.passed:
        metadata["examples"] = MetadataValue.md(
            finding.rows.head(_SHOWN_ROWS).to_markdown(index=False)
        )
    return AssetCheckResult(passed=finding.passed, severity=severity, metadata=metadata)


@asset_check(
    asset="daily_prices",
    blocking=True,
    partitions_def=DAILY_PARTITIONS,
    description="Every open, high, low and close is above zero (and every bar has a close).",
)
def daily_prices_positive(daily_prices: pd.DataFrame) -> AssetCheckResult:
    return _result(quality.non_positive_prices(daily_prices), AssetCheckSeverity.ERROR)


@asset_check(
    asset="daily_prices",
    blocking=True,
    partitions_def=DAILY_PARTITIONS,
    description="low <= open <= high and low <= close <= high on every bar.",
)
def daily_prices_ohlc_consistent(daily_prices: pd.DataFrame) -> AssetCheckResult:
    return _result(quality.inconsistent_ohlc(daily_prices), AssetCheckSeverity.ERROR)


@asset_check(
    asset="daily_prices",
    blocking=True,
    partitions_def=DAILY_PARTITIONS,
    description="Volume is never negative.",
)
def daily_prices_volume_non_negative(daily_prices: pd.DataFrame) -> AssetCheckResult:
    return _result(quality.negative_volume(daily_prices), AssetCheckSeverity.ERROR)


@asset_check(
    asset="daily_prices",
    blocking=True,
    partitions_def=DAILY_PARTITIONS,
    additional_ins={"asx_symbols": AssetIn()},
    description="At least ASX_MIN_COVERAGE (default 90%) of each session's active symbols have "
    "a bar; below it breadth, screeners and the report do not run on that session (ERROR).",
)
def daily_prices_coverage(
    context: AssetCheckExecutionContext,
    market_data: MarketDataResource,
    daily_prices: pd.DataFrame,
    asx_symbols: pd.DataFrame,
) -> AssetCheckResult:
    finding = quality.low_coverage(daily_prices, asx_symbols, market_data.min_coverage)
    table = quality.coverage(daily_prices, asx_symbols)
    lowest = float(table["share"].min()) if not table.empty else 0.0
    extra: dict[str, object] = {"lowest_coverage": round(lowest, 4)}
    if not finding.passed:
        # Why those symbols are missing: the prices step of this run said so in its metadata;
        # when this run did not fetch them (a check run on its own), which ones they are.
        failed = failed_symbols_of_run(context.instance, context.run.run_id)
        if not failed:
            sessions = list(finding.rows["trade_date"])
            missing = quality.missing_bars(daily_prices, asx_symbols, sessions)
            failed = "\n".join(f"- {line}" for line in missing) or "none"
        extra["failed_symbols"] = MetadataValue.md(failed)
    return _result(finding, AssetCheckSeverity.ERROR, **extra)


@asset_check(
    asset="daily_prices",
    partitions_def=DAILY_PARTITIONS,
    required_resource_keys={"warehouse"},
    description=f"No symbol's close is unchanged with zero volume for {quality.STALE_SESSIONS} "
    "sessions in a row (WARN).",
)
def daily_prices_stale_quotes(
    context: AssetCheckExecutionContext, daily_prices: pd.DataFrame
) -> AssetCheckResult:
    window, sessions = span_of(context.partition_time_window)
    history = _with_earlier_sessions(context, daily_prices, window, quality.STALE_SESSIONS - 1)
    return _result(quality.stale_quotes(history, sessions), AssetCheckSeverity.WARN)


@asset_check(
    asset="corporate_actions",
    blocking=True,
    partitions_def=DAILY_PARTITIONS,
    additional_ins={"daily_prices": AssetIn()},
    description="Dividends are at least 0 and at most half the ex-date close; split ratios are "
    "finite, not 1, and within 1:1000..1000:1.",
)
def corporate_actions_plausible(
    corporate_actions: pd.DataFrame, daily_prices: pd.DataFrame
) -> AssetCheckResult:
    finding = quality.implausible_actions(corporate_actions, daily_prices)
    return _result(finding, AssetCheckSeverity.ERROR, actions_checked=len(corporate_actions))


def _with_earlier_sessions(
    context: AssetCheckExecutionContext, prices: pd.DataFrame, window: Window, sessions: int
) -> pd.DataFrame:
    """The window's bars plus those of the `sessions` sessions before it.

    A check cannot map its own asset over a longer window (Dagster refuses the checked asset in
    `additional_ins`), so the earlier sessions are read through the `warehouse` resource, which
    still keeps the check unaware of the backend.
    """
    first = session_before(window.start, sessions) if sessions > 0 else None
    if first is None:
        return prices
    warehouse = context.resources.warehouse.open()
    history = warehouse.read_window(DAILY_PRICES, Window(first, window.start))
    return pd.concat([history, prices], ignore_index=True) if not history.empty else prices


DAILY_PRICES_CHECKS = [
    daily_prices_positive,
    daily_prices_ohlc_consistent,
    daily_prices_volume_non_negative,
    daily_prices_coverage,
    daily_prices_stale_quotes,
]
ALL_CHECKS = [*DAILY_PRICES_CHECKS, corporate_actions_plausible]
