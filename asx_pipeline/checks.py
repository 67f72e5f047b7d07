"""Asset checks that stop bad data before anything downstream uses it.

Each check is partitioned like the asset it checks, so it judges exactly the window a run
materialised (one session, or a whole backfill range). Structural problems (a non-positive price,
a bar outside its own range, negative volume, a duplicate key, an implausible corporate action)
fail with severity ERROR and are `blocking`: in the same run, daily_indicators and everything
after it do not run on them. Coverage below ASX_MIN_COVERAGE is blocking too: breadth, screeners
and the report on half the market would mislead. Stale quotes are WARN: worth a look, not a stop.
The rules themselves live in analytics/quality.py, shared with the daily report.

All six are one `multi_asset_check`, so a run checks the stored window in one step that reads
`daily_prices` once, instead of six steps that each load it (bench/refresh.py: the evening
refresh is mostly per-step cost). Each check is still its own check in the UI, with its own
result, severity and blocking flag, and can be run alone (the step is subsettable).
"""

from collections.abc import Callable, Iterator

import pandas as pd
from dagster import (
    AssetCheckExecutionContext,
    AssetCheckKey,
    AssetCheckResult,
    AssetCheckSeverity,
    AssetCheckSpec,
    AssetIn,
    MetadataValue,
    multi_asset_check,
)

from asx_pipeline.analytics import quality
from asx_pipeline.calendar import session_before, span_of
from asx_pipeline.configured import DAILY_PARTITIONS
from asx_pipeline.runs import failed_symbols_of_run
from asx_pipeline.warehouse.frames import Window
from asx_pipeline.warehouse.tables import DAILY_PRICES

_SHOWN_ROWS = 20


def _spec(
    name: str, asset: str, description: str, blocking: bool = True, reads: tuple[str, ...] = ()
) -> AssetCheckSpec:
    return AssetCheckSpec(
        name,
        asset=asset,
        description=description,
        blocking=blocking,
        additional_deps=list(reads),
        partitions_def=DAILY_PARTITIONS,
    )


SPECS = [
    _spec(
        "daily_prices_positive",
        "daily_prices",
        "Every open, high, low and close is above zero (and every bar has a close).",
    ),
    _spec(
        "daily_prices_ohlc_consistent",
        "daily_prices",
        "low <= open <= high and low <= close <= high on every bar.",
    ),
    _spec("daily_prices_volume_non_negative", "daily_prices", "Volume is never negative."),
    _spec(
        "daily_prices_coverage",
        "daily_prices",
        "At least ASX_MIN_COVERAGE (default 90%) of each session's active symbols have a bar; "
        "below it breadth, screeners and the report do not run on that session (ERROR).",
        reads=("asx_symbols",),
    ),
    _spec(
        "daily_prices_stale_quotes",
        "daily_prices",
        f"No symbol's close is unchanged with zero volume for {quality.STALE_SESSIONS} sessions "
        "in a row (WARN).",
        blocking=False,
    ),
    _spec(
        "corporate_actions_plausible",
        "corporate_actions",
        "Dividends are at least 0 and at most half the ex-date close; split ratios are finite, "
        "not 1, and within 1:1000..1000:1.",
        reads=("daily_prices",),
    ),
]


# A check's finding, its severity, and what else its result shows.
Outcome = tuple[quality.Finding, AssetCheckSeverity, dict[str, object]]


def _result(key: AssetCheckKey, outcome: Outcome) -> AssetCheckResult:
    finding, severity, extra = outcome
    metadata = {"summary": finding.summary, "offending_rows": len(finding.rows), **extra}
    if not finding.passed:
        metadata["examples"] = MetadataValue.md(
            finding.rows.head(_SHOWN_ROWS).to_markdown(index=False)
        )
    return AssetCheckResult(
        asset_key=key.asset_key,
        check_name=key.name,
        passed=finding.passed,
        severity=severity,
        metadata=metadata,
    )


@multi_asset_check(
    name="market_data_checks",
    specs=SPECS,
    can_subset=True,
    ins={"daily_prices": AssetIn(), "corporate_actions": AssetIn(), "asx_symbols": AssetIn()},
    required_resource_keys={"warehouse", "market_data"},
    description="The checks of daily_prices and corporate_actions, on the run's window.",
)
def market_data_checks(
    context: AssetCheckExecutionContext,
    daily_prices: pd.DataFrame,
    corporate_actions: pd.DataFrame,
    asx_symbols: pd.DataFrame,
) -> Iterator[AssetCheckResult]:
    error = AssetCheckSeverity.ERROR
    checks: dict[str, Callable[[], Outcome]] = {
        "daily_prices_positive": lambda: (quality.non_positive_prices(daily_prices), error, {}),
        "daily_prices_ohlc_consistent": lambda: (
            quality.inconsistent_ohlc(daily_prices), error, {}
        ),
        "daily_prices_volume_non_negative": lambda: (
            quality.negative_volume(daily_prices), error, {}
        ),
        "daily_prices_coverage": lambda: _coverage(context, daily_prices, asx_symbols),
        "daily_prices_stale_quotes": lambda: _stale_quotes(context, daily_prices),
        "corporate_actions_plausible": lambda: (
            quality.implausible_actions(corporate_actions, daily_prices),
            error,
            {"actions_checked": len(corporate_actions)},
        ),
    }
    selected = {key.name: key for key in context.selected_asset_check_keys}
    # In the order of SPECS, whatever order the selection comes in.
    for spec in SPECS:
        if spec.name in selected:
            yield _result(selected[spec.name], checks[spec.name]())


def _coverage(
    context: AssetCheckExecutionContext, daily_prices: pd.DataFrame, asx_symbols: pd.DataFrame
) -> Outcome:
    # Computed once: the finding and the lowest share are read off the same table.
    table = quality.coverage(daily_prices, asx_symbols)
    finding = quality.sessions_below(table, context.resources.market_data.min_coverage)
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
    return finding, AssetCheckSeverity.ERROR, extra


def _stale_quotes(context: AssetCheckExecutionContext, daily_prices: pd.DataFrame) -> Outcome:
    window, sessions = span_of(context.partition_time_window)
    history = _with_earlier_sessions(context, daily_prices, window, quality.STALE_SESSIONS - 1)
    return quality.stale_quotes(history, sessions), AssetCheckSeverity.WARN, {}


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


ALL_CHECKS = [market_data_checks]
