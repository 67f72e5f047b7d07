"""The market-data resource: which source, which universe, and when a session is final."""

from __future__ import annotations

import datetime as dt
from functools import cached_property
from pathlib import Path
from typing import Literal

from dagster import ConfigurableResource, Failure
from pydantic import PrivateAttr

from asx_pipeline.calendar import SessionNotFinalError, ensure_sessions_final, session_before
from asx_pipeline.sources.market_data import MarketDataSource

# The Dagster concurrency pool of every asset that calls Yahoo. Its limit (1) is set in both
# dagster.yaml files, so the daily tick, intraday snapshots and a backfill never call Yahoo at once.
YAHOO_POOL = "yahoo"


class MarketDataResource(ConfigurableResource):
    """Gives assets a market-data source; configured from settings in definitions.py."""

    source: Literal["yahoo", "sample"] = "yahoo"
    universe: str = "top:200"
    data_dir: str = "data"
    directory_source: str = ""
    sample_symbols: int | None = None
    yahoo_batch_size: int = 100
    yahoo_requests_per_second: float = 2.0
    yahoo_max_concurrency: int = 2
    yahoo_max_retries: int = 5
    yahoo_timeout_seconds: float = 30.0
    min_coverage: float = 0.9
    # A company joining the universe gets its history back to start_date (ISO; the first
    # partition), or only history_sessions sessions back when that is set.
    start_date: str = ""
    history_sessions: int | None = None
    data_delay_minutes: int = 30

    _client: MarketDataSource | None = PrivateAttr(default=None)

    def client(self) -> MarketDataSource:
        """One source object per resource instance, so a run fetches the directory once."""
        if self._client is None:
            self._client = self._build_client()
        return self._client

    def ensure_final(self, sessions: list[dt.date], now: dt.datetime | None = None) -> None:
        """Refuse sessions whose end-of-day data cannot be final yet (see calendar.py)."""
        try:
            ensure_sessions_final(
                sessions, now or dt.datetime.now(dt.UTC), self.data_delay_minutes
            )
        except SessionNotFinalError as error:
            # A Failure shows its description as-is in the UI, without a stack trace.
            # Not retried: waiting minutes (RetryPolicy) would not make the session final.
            raise Failure(str(error), allow_retries=False) from None

    def history_from(self, joins_on: dt.date) -> dt.date | None:
        """Where a company joining on `joins_on` gets its history from; None if nothing to load."""
        first = dt.date.fromisoformat(self.start_date) if self.start_date else None
        if self.history_sessions is not None:
            back = session_before(joins_on, self.history_sessions)
            first = max(filter(None, (first, back)), default=None)
        return first if first is not None and first < joins_on else None

    @cached_property
    def cache_dir(self) -> Path:
        return Path(self.data_dir) / "cache"

    def _build_client(self) -> MarketDataSource:
        if self.source == "sample":
            from asx_pipeline.sources.sample import SampleMarketData

            return SampleMarketData(symbols=self.sample_symbols)
        from asx_pipeline.sources.yahoo import YahooMarketData

        return YahooMarketData(
            cache_dir=self.cache_dir / "yfinance",
            requests_per_second=self.yahoo_requests_per_second,
            max_concurrency=self.yahoo_max_concurrency,
            max_retries=self.yahoo_max_retries,
            timeout_seconds=self.yahoo_timeout_seconds,
            directory_source=self.directory_source,
        )
