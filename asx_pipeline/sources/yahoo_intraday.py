"""Intraday snapshots from Yahoo Finance: one batched quote request per snapshot.

`yf.download` asks for one chart per ticker, which is 200 requests every 15 minutes for a top-200
universe. Yahoo's v7 quote endpoint answers many symbols in one request, so a snapshot costs one
request per batch (ASX_YAHOO_BATCH_SIZE symbols, 100 by default). yfinance's `YfData` supplies the
cookie and crumb that endpoint needs. Yahoo only knows the *current* quote, so a snapshot for a
moment far from now is refused rather than stamped with the wrong time.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

import pandas as pd
import tenacity

from asx_pipeline.sources.market_data import (
    INTRADAY_COLUMNS,
    IntradaySnapshot,
    MarketDataError,
)
from asx_pipeline.sources.yahoo import describe_error, is_transient, shared_yfinance_session
from asx_pipeline.sources.yahoo_http import RequestLimiter, limit_session, process_limiter

QUOTE_URL = "https://query1.finance.yahoo.com/v7/finance/quote"
_FIELDS = "regularMarketPrice,regularMarketChangePercent,regularMarketVolume,regularMarketTime"
# A quote fetched this long after the snapshot time would describe a different moment.
MAX_SNAPSHOT_LAG = dt.timedelta(minutes=20)


class _Retryable(Exception):
    """Yahoo throttled us (HTTP 429) or the network failed: worth another attempt."""


class YahooIntradayQuotes:
    """The `yahoo` intraday source."""

    name = "yahoo"

    def __init__(
        self,
        *,
        batch_size: int = 100,
        requests_per_second: float = 2.0,
        max_concurrency: int = 2,
        max_retries: int = 5,
        session: Any = None,
        retry_wait_initial: float = 1.0,
        limiter: RequestLimiter | None = None,
        now: Any = None,
    ) -> None:
        self.batch_size = batch_size
        self.max_retries = max_retries
        self.retry_wait_initial = retry_wait_initial
        # The same per-process limiter and session as the daily bars: one rate for all of Yahoo.
        self._limiter = limiter or process_limiter(requests_per_second, max_concurrency)
        self._session = limit_session(session or shared_yfinance_session(), self._limiter)
        # Injectable clock: tests replay recorded quotes at a fixed moment.
        self._now = now or (lambda: dt.datetime.now(dt.UTC))

    def intraday_snapshot(self, tickers: Sequence[str], at: dt.datetime) -> IntradaySnapshot:
        lag = abs(self._now() - at)
        if lag > MAX_SNAPSHOT_LAG:
            raise MarketDataError(
                f"Yahoo only gives the current quote, and the snapshot asked for "
                f"({at.isoformat()}) is {lag} away from now: past snapshots cannot be fetched"
            )
        frames, failed = [], {}
        ordered = list(tickers)
        for start in range(0, len(ordered), self.batch_size):
            batch = ordered[start : start + self.batch_size]
            quotes = self._quotes_with_retries(batch)
            frames.append(quotes)
            missing = sorted(set(batch) - set(quotes["yahoo_ticker"]))
            failed.update({ticker: "no quote in Yahoo's answer" for ticker in missing})
        frames = [frame for frame in frames if not frame.empty]
        empty = pd.DataFrame(columns=INTRADAY_COLUMNS)
        combined = pd.concat(frames, ignore_index=True) if frames else empty
        return IntradaySnapshot(combined, failed)

    def _quotes_with_retries(self, batch: list[str]) -> pd.DataFrame:
        retrying = tenacity.Retrying(
            retry=tenacity.retry_if_exception_type(_Retryable),
            stop=tenacity.stop_after_attempt(self.max_retries + 1),
            wait=tenacity.wait_random_exponential(multiplier=self.retry_wait_initial, max=60),
            reraise=True,
        )
        try:
            return retrying(self._quotes, batch)
        except _Retryable as error:
            raise MarketDataError(
                f"Yahoo quotes for {len(batch)} tickers failed after {self.max_retries + 1} "
                f"attempts: {error}"
            ) from error

    def _quotes(self, batch: list[str]) -> pd.DataFrame:
        from yfinance.data import YfData

        try:
            body = YfData(session=self._session).get_raw_json(
                QUOTE_URL, params={"symbols": ",".join(batch), "fields": _FIELDS}
            )
        except Exception as error:
            # requests' or curl_cffi's exceptions (production's session is curl_cffi's): an
            # HTTP error carries its response; the rest are judged as the daily bars' are.
            response = getattr(error, "response", None)
            status = getattr(response, "status_code", None)
            if status == 429 or (status is not None and status >= 500):
                raise _Retryable(f"HTTP {status}") from error
            if status is not None:
                raise MarketDataError(
                    f"Yahoo refused the quote request: HTTP {status}"
                ) from error
            if is_transient(error):
                raise _Retryable(describe_error(error)) from error
            raise
        return quotes_frame(body)


def quotes_frame(body: dict[str, Any]) -> pd.DataFrame:
    """Yahoo's quoteResponse as INTRADAY_COLUMNS; quotes without a price are left out."""
    results = (body.get("quoteResponse") or {}).get("result") or []
    rows = [
        {
            "yahoo_ticker": quote["symbol"],
            "last": quote["regularMarketPrice"],
            "change_pct": quote.get("regularMarketChangePercent"),
            "volume": quote.get("regularMarketVolume"),
        }
        for quote in results
        if quote.get("symbol") and quote.get("regularMarketPrice") is not None
    ]
    return pd.DataFrame(rows, columns=INTRADAY_COLUMNS)
