"""The yahoo source, run through the real yfinance against recorded Yahoo chart responses.

Nothing here reaches the network: `responses` answers every HTTP call yfinance makes (see
yahoo_replay.py), and an unexpected URL fails the request instead of leaving the machine.
"""

from __future__ import annotations

import os

# yfinance picks its HTTP backend at import; plain requests is what `responses` can intercept.
os.environ.setdefault("YF_DISABLE_CURL_CFFI", "1")

import copy
import datetime as dt
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pandas as pd
import pytest
import requests
import responses
import yfinance as yf
from yfinance.data import YfData

from asx_pipeline.sources import yahoo
from asx_pipeline.sources.market_data import (
    ACTION_COLUMNS,
    PRICE_COLUMNS,
    MarketDataError,
)
from asx_pipeline.sources.yahoo import RateLimiter, YahooMarketData
from asx_pipeline_tests.sources.yahoo_replay import (
    SYDNEY,
    YahooReplay,
    asx_body,
    bar_dates,
    chart_result,
    load_chart_body,
    reset_yfinance_state,
    too_many_requests,
    with_symbol,
)

AAPL_FALL_2020 = "chart-AAPL-2020-08-31-to-2020-11-07.json"
AAPL_JAN_2020 = "chart-AAPL-2020-01-01-to-2020-01-03.json"
FIRST, LAST = dt.date(2020, 8, 31), dt.date(2020, 11, 7)


@pytest.fixture
def aapl(fixtures_dir: Path) -> dict[str, Any]:
    return load_chart_body(fixtures_dir, AAPL_FALL_2020)


@pytest.fixture
def replay() -> Iterator[YahooReplay]:
    reset_yfinance_state()
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        player = YahooReplay(rsps)
        player.install()
        yield player
    reset_yfinance_state()


@pytest.fixture
def make_source(tmp_path: Path):
    def make(**overrides: Any) -> YahooMarketData:
        options: dict[str, Any] = {
            "cache_dir": tmp_path / "cache",
            "directory_source": str(tmp_path / "directory.csv"),
            "session": requests.Session(),
            "requests_per_second": 1000.0,
            "retry_wait_initial": 0.0,
            "retry_wait_max": 0.0,
        }
        options.update(overrides)
        return YahooMarketData(**options)

    return make


def row(frame: pd.DataFrame, ticker: str, day: dt.date) -> dict[str, Any]:
    match = frame[(frame["yahoo_ticker"] == ticker) & (frame["trade_date"] == day)]
    assert len(match) == 1, f"expected one row for {ticker} on {day}, got {len(match)}"
    return match.iloc[0].to_dict()


def test_aapl_prices_split_and_dividend(replay, make_source, aapl):
    replay.serve("AAPL", aapl)

    history = make_source().price_history(["AAPL"], FIRST, LAST)

    prices = history.prices
    assert list(prices.columns) == PRICE_COLUMNS
    assert history.failed == {}
    assert len(prices) == 49
    assert prices["trade_date"].min() == dt.date(2020, 8, 31)
    assert prices["trade_date"].max() == dt.date(2020, 11, 6)
    assert prices["volume"].dtype == "int64"
    # The day of the 4:1 split: raw prices as traded, not adjusted.
    assert row(prices, "AAPL", dt.date(2020, 8, 31)) == {
        "trade_date": dt.date(2020, 8, 31),
        "yahoo_ticker": "AAPL",
        "open": 127.58000183105469,
        "high": 131.0,
        "low": 126.0,
        "close": 129.0399932861328,
        "adj_close": 125.82673645019531,
        "volume": 225702700,
    }
    # The dividend's ex-date: adj_close equals close from here on.
    assert row(prices, "AAPL", dt.date(2020, 11, 6)) == {
        "trade_date": dt.date(2020, 11, 6),
        "yahoo_ticker": "AAPL",
        "open": 118.31999969482422,
        "high": 119.19999694824219,
        "low": 116.12999725341797,
        "close": 118.69000244140625,
        "adj_close": 115.93415069580078,
        "volume": 114457900,
    }
    assert history.actions.to_dict("records") == [
        {"ex_date": dt.date(2020, 8, 31), "yahoo_ticker": "AAPL", "action": "split", "value": 4.0},
        {
            "ex_date": dt.date(2020, 11, 6),
            "yahoo_ticker": "AAPL",
            "action": "dividend",
            "value": 0.205,
        },
    ]
    assert list(history.actions.columns) == ACTION_COLUMNS


def test_asx_bars_land_on_their_sydney_date(replay, make_source, aapl):
    body = asx_body(aapl, "BHP.AX")
    replay.serve("BHP.AX", body)
    stamps = pd.to_datetime(chart_result(body)["timestamp"], unit="s", utc=True)
    sydney_dates = list(stamps.tz_convert(SYDNEY).date)
    # Guard that the test can fail: in daylight saving 10:00 Sydney is the previous UTC day.
    assert sum(s.date() != d for s, d in zip(stamps, sydney_dates, strict=True)) == 25
    assert all(s.tz_convert(SYDNEY).hour == 10 for s in stamps)

    history = make_source().price_history(["BHP.AX"], FIRST, LAST)

    assert history.failed == {}
    assert list(history.prices["trade_date"]) == sydney_dates == bar_dates(aapl)
    # 2020-11-06 10:00 AEDT is 2020-11-05 23:00 UTC; the bar and the dividend are the 6th's.
    assert row(history.prices, "BHP.AX", dt.date(2020, 11, 6))["close"] == 118.69000244140625
    assert history.actions[["ex_date", "action", "value"]].to_dict("records") == [
        {"ex_date": dt.date(2020, 8, 31), "action": "split", "value": 4.0},
        {"ex_date": dt.date(2020, 11, 6), "action": "dividend", "value": 0.205},
    ]
    # The request spans Sydney midnights from `first` to the day after today (end exclusive):
    # through today, so that every split after `last` is seen (see the next tests).
    (request,) = replay.range_requests("BHP.AX")
    start, end = (moment.astimezone(SYDNEY) for moment in request.period)
    tomorrow = dt.datetime.now(SYDNEY).date() + dt.timedelta(days=1)
    assert (start.date(), start.hour, end.date(), end.hour) == (FIRST, 0, tomorrow, 0)


def test_only_sessions_inside_the_range_are_returned(replay, make_source, aapl):
    # Yahoo may send more than asked for; the source keeps only [first, last].
    replay.serve("BHP.AX", asx_body(aapl, "BHP.AX"))

    history = make_source().price_history(["BHP.AX"], dt.date(2020, 10, 5), dt.date(2020, 10, 9))

    assert list(history.prices["trade_date"]) == [dt.date(2020, 10, d) for d in range(5, 10)]
    assert history.actions.empty


def test_unknown_ticker_is_reported_and_the_others_returned(replay, make_source, aapl):
    replay.serve("BHP.AX", asx_body(aapl, "BHP.AX"))
    replay.serve("CBA.AX", asx_body(aapl, "CBA.AX"))
    # No reply queued for ZZZ.AX: the replay answers Yahoo's 404 "No data found" body.

    history = make_source().price_history(["BHP.AX", "ZZZ.AX", "CBA.AX"], FIRST, LAST)

    assert history.failed == {"ZZZ.AX": "YFTzMissingError('possibly delisted; no timezone found')"}
    assert history.prices.groupby("yahoo_ticker").size().to_dict() == {"BHP.AX": 49, "CBA.AX": 49}


def test_ticker_without_bars_in_the_range_fails(replay, make_source, aapl, fixtures_dir):
    replay.serve("BHP.AX", asx_body(aapl, "BHP.AX"))
    replay.serve("OLD.AX", asx_body(load_chart_body(fixtures_dir, AAPL_JAN_2020), "OLD.AX"))

    history = make_source().price_history(["BHP.AX", "OLD.AX"], FIRST, LAST)

    assert history.failed == {"OLD.AX": "no bars between 2020-08-31 and 2020-11-07"}
    assert set(history.prices["yahoo_ticker"]) == {"BHP.AX"}


def test_rate_limited_twice_then_answered(replay, make_source, aapl):
    replay.serve("BHP.AX", too_many_requests(), too_many_requests(), asx_body(aapl, "BHP.AX"))
    calls = SpyOnDownload()

    with calls:
        history = make_source(max_retries=2).price_history(["BHP.AX"], FIRST, LAST)

    assert history.failed == {}
    assert len(history.prices) == 49
    # yfinance retries a failed request once itself (switching cookie strategy), so both 429s
    # land in our first attempt; the second attempt gets the data.
    assert calls.tickers == [["BHP.AX"], ["BHP.AX"]]


def test_network_error_is_retried(replay, make_source, aapl):
    replay.serve("BHP.AX", requests.ConnectionError("connection reset"), asx_body(aapl, "BHP.AX"))

    history = make_source(max_retries=1).price_history(["BHP.AX"], FIRST, LAST)

    assert history.failed == {}
    assert len(history.prices) == 49


def test_retries_only_the_throttled_ticker_then_gives_up_naming_it(replay, make_source, aapl):
    replay.serve("BHP.AX", asx_body(aapl, "BHP.AX"))
    replay.serve("CBA.AX", too_many_requests())
    calls = SpyOnDownload()

    with calls, pytest.raises(MarketDataError) as raised:
        make_source(max_retries=3).price_history(["BHP.AX", "CBA.AX"], FIRST, LAST)

    message = str(raised.value)
    assert "CBA.AX" in message and "BHP.AX" not in message
    assert "Too Many Requests" in message and "after 3 retries" in message
    assert calls.tickers == [["BHP.AX", "CBA.AX"], ["CBA.AX"], ["CBA.AX"], ["CBA.AX"]]


def test_batches_fetch_each_ticker_once_for_the_whole_range(replay, make_source, aapl):
    tickers = ["BHP.AX", "CBA.AX", "WES.AX"]
    for ticker in tickers:
        replay.serve(ticker, asx_body(aapl, ticker))
    calls = SpyOnDownload()

    with calls:
        history = make_source(batch_size=2).price_history(tickers, FIRST, LAST)

    assert calls.tickers == [["BHP.AX", "CBA.AX"], ["WES.AX"]]
    assert all(kwargs["start"] == "2020-08-31" for kwargs in calls.kwargs)
    # Through today (exclusive end tomorrow), so that later splits are seen.
    tomorrow = dt.datetime.now(SYDNEY).date() + dt.timedelta(days=1)
    assert all(kwargs["end"] == tomorrow.isoformat() for kwargs in calls.kwargs)
    for ticker in tickers:
        # One request for the bars; yfinance adds one `range=1d` request the first time it sees
        # a ticker, to learn its timezone (then cached under cache_dir).
        (bars,) = replay.range_requests(ticker)
        start, end = (moment.astimezone(SYDNEY).date() for moment in bars.period)
        assert (start, end) == (FIRST, tomorrow)
        assert len(replay.chart_requests(ticker)) == 2
    assert len(history.prices) == 3 * 49


def test_timezone_lookups_are_cached_under_cache_dir(replay, make_source, aapl, tmp_path):
    replay.serve("BHP.AX", asx_body(aapl, "BHP.AX"))
    source = make_source()

    source.price_history(["BHP.AX"], FIRST, LAST)
    assert (tmp_path / "cache" / "tkr-tz.db").exists()
    YfData.cache_get.cache_clear()  # forget the memoised response, keep the tz cache
    source.price_history(["BHP.AX"], FIRST, LAST)

    assert len(replay.chart_requests("BHP.AX")) == 3  # tz lookup once, bars twice


def junk_body(aapl: dict[str, Any], symbol: str, field: str, value: Any) -> dict[str, Any]:
    body = asx_body(aapl, symbol)
    chart_result(body)["indicators"]["quote"][0][field][2] = value
    return body


def test_junk_from_yahoo_is_flagged(replay, make_source, aapl):
    replay.serve("BHP.AX", asx_body(aapl, "BHP.AX"))
    replay.serve("NEG.AX", junk_body(aapl, "NEG.AX", "close", -131.4))
    replay.serve("TXT.AX", junk_body(aapl, "TXT.AX", "close", "n/a"))
    no_volume = asx_body(aapl, "VOL.AX")
    del chart_result(no_volume)["indicators"]["quote"][0]["volume"]
    replay.serve("VOL.AX", no_volume)

    history = make_source().price_history(["BHP.AX", "NEG.AX", "TXT.AX", "VOL.AX"], FIRST, LAST)

    assert history.failed == {
        "NEG.AX": "negative or infinite Close on 2020-09-02: -131.4",
        "TXT.AX": "ValueError(\"could not convert string to float: 'n/a'\")",
        "VOL.AX": "KeyError('volume')",
    }
    assert set(history.prices["yahoo_ticker"]) == {"BHP.AX"}
    assert set(history.actions["yahoo_ticker"]) == {"BHP.AX"}


def test_junk_in_frames_is_described():
    index = pd.DatetimeIndex(["2020-10-05 10:00", "2020-10-06 10:00"]).tz_localize(SYDNEY)
    frame = pd.DataFrame(
        {
            "Open": [1.0, 1.0],
            "High": [1.0, 1.0],
            "Low": [1.0, 1.0],
            "Close": [1.0, "1,2"],
            "Adj Close": [1.0, 1.0],
            "Volume": [1, 1],
            "Dividends": [0.0, 0.0],
        },
        index=index,
    )

    _, _, missing = yahoo._to_canonical("X.AX", frame, dt.date(2020, 10, 5), dt.date(2020, 10, 6))
    frame["Stock Splits"] = [0.0, 0.0]
    _, _, text = yahoo._to_canonical("X.AX", frame, dt.date(2020, 10, 5), dt.date(2020, 10, 6))
    frame["Close"] = [1.0, float("inf")]
    _, _, infinite = yahoo._to_canonical("X.AX", frame, dt.date(2020, 10, 5), dt.date(2020, 10, 6))

    assert missing == "Yahoo response lacks columns: ['Stock Splits']"
    assert text == "non-numeric Close on 2020-10-06: '1,2'"
    assert infinite == "negative or infinite Close on 2020-10-06: inf"


def test_rate_limiter_spaces_calls_without_sleeping_for_real():
    now = [100.0]
    sleeps: list[float] = []

    def sleep(seconds: float) -> None:
        sleeps.append(seconds)
        now[0] += seconds

    limiter = RateLimiter(4.0, clock=lambda: now[0], sleep=sleep)
    limiter.acquire()
    limiter.acquire()
    now[0] += 0.1
    limiter.acquire()
    now[0] += 10
    limiter.acquire()

    assert sleeps == [0.25, pytest.approx(0.15)]


def test_every_yfinance_call_passes_the_rate_limiter(replay, make_source, aapl):
    tickers = ["BHP.AX", "CBA.AX", "WES.AX"]
    for ticker in tickers:
        replay.serve(ticker, asx_body(aapl, ticker))
    sleeps: list[float] = []
    limiter = RateLimiter(0.5, clock=lambda: 0.0, sleep=sleeps.append)

    make_source(batch_size=1, rate_limiter=limiter).price_history(tickers, FIRST, LAST)

    # Three calls at most one per two seconds: the 2nd and 3rd wait (the clock stands still).
    assert len(sleeps) == 2


def test_directory_is_loaded_once_from_the_configured_source(make_source, monkeypatch, tmp_path):
    loads: list[tuple[str, Any]] = []
    directory = pd.DataFrame({"symbol": ["BHP"], "company_name": ["BHP GROUP LIMITED"]})

    def fake_load(source: str, session: requests.Session | None = None) -> pd.DataFrame:
        loads.append((source, session))
        return directory

    monkeypatch.setattr(yahoo, "load_directory", fake_load)
    session = requests.Session()
    source = make_source(session=session)

    first = source.directory(dt.date(2025, 11, 20))
    second = source.directory(dt.date(2025, 11, 21))

    assert loads == [(str(tmp_path / "directory.csv"), session)]
    pd.testing.assert_frame_equal(first, directory)
    pd.testing.assert_frame_equal(second, directory)


def test_served_symbol_copies_are_independent(aapl):
    # The replay helpers must never mutate the loaded fixture body in place.
    before = copy.deepcopy(aapl)
    asx_body(aapl, "BHP.AX")
    with_symbol(aapl, "MSFT")
    assert aapl == before


class SpyOnDownload:
    """Records the tickers and arguments of every yf.download call, passing each through."""

    def __init__(self) -> None:
        self.tickers: list[list[str]] = []
        self.kwargs: list[dict[str, Any]] = []
        self._patch = pytest.MonkeyPatch()

    def __enter__(self) -> SpyOnDownload:
        real = yf.download

        def spy(tickers: list[str], **kwargs: Any) -> pd.DataFrame:
            self.tickers.append(sorted(tickers))
            self.kwargs.append(kwargs)
            return real(tickers, **kwargs)

        self._patch.setattr(yahoo.yf, "download", spy)
        return self

    def __exit__(self, *exc: object) -> None:
        self._patch.undo()


def test_which_failures_are_worth_a_retry():
    done = yahoo._BatchResult(failed={"LOCK.AX": "no data returned"})
    attempt = yahoo._BatchResult(
        failed={
            "LOCK.AX": "OperationalError('database is locked')",
            "NET.AX": "ConnectionError('Connection aborted.')",
            "SLOW.AX": "YFRateLimitError('Too Many Requests. Rate limited. Try after a while.')",
            "GONE.AX": "YFTzMissingError('possibly delisted; no timezone found')",
        }
    )

    assert done.absorb(attempt) == ["LOCK.AX", "NET.AX", "SLOW.AX"]
    assert done.failed == {"GONE.AX": "YFTzMissingError('possibly delisted; no timezone found')"}


def test_bars_before_a_split_in_the_range_are_restated_as_traded(replay, make_source, aapl):
    # Yahoo divides every bar before a split by its ratio. Move AAPL's 4:1 split from the first
    # bar to 2020-10-01 in memory: the bars before it must come back 4x the body's prices.
    body = copy.deepcopy(aapl)
    result = chart_result(body)
    moved = next(t for t in result["timestamp"] if yf_date(t) == dt.date(2020, 10, 1))
    split = result["events"]["splits"].pop(next(iter(result["events"]["splits"])))
    result["events"]["splits"] = {str(moved): {**split, "date": moved}}
    replay.serve("AAPL", body)

    history = make_source().price_history(["AAPL"], FIRST, LAST)

    quote = result["indicators"]["quote"][0]
    adjclose = result["indicators"]["adjclose"][0]["adjclose"]
    index = {yf_date(t): i for i, t in enumerate(result["timestamp"])}
    before, after = index[dt.date(2020, 9, 30)], index[dt.date(2020, 10, 1)]
    assert row(history.prices, "AAPL", dt.date(2020, 9, 30)) == {
        "trade_date": dt.date(2020, 9, 30),
        "yahoo_ticker": "AAPL",
        "open": quote["open"][before] * 4,
        "high": quote["high"][before] * 4,
        "low": quote["low"][before] * 4,
        "close": quote["close"][before] * 4,
        "adj_close": adjclose[before],
        "volume": round(quote["volume"][before] / 4),
    }
    assert row(history.prices, "AAPL", dt.date(2020, 10, 1))["close"] == quote["close"][after]
    split_rows = history.actions[history.actions["action"] == "split"]
    assert split_rows[["ex_date", "value"]].values.tolist() == [[dt.date(2020, 10, 1), 4.0]]


def yf_date(timestamp: int) -> dt.date:
    """The New York date of an AAPL bar's timestamp."""
    return dt.datetime.fromtimestamp(timestamp, ZoneInfo("America/New_York")).date()


def test_a_split_after_the_range_is_undone_and_dividends_too(replay, make_source, aapl):
    # A backfill that ends before a split must store what traded, as the daily runs did: move the
    # 4:1 split to 2020-10-01, add a dividend on 2020-09-15 (Yahoo restates it too), and ask only
    # for September.
    body = copy.deepcopy(aapl)
    result = chart_result(body)
    index = {yf_date(t): i for i, t in enumerate(result["timestamp"])}
    moved = result["timestamp"][index[dt.date(2020, 10, 1)]]
    paid = result["timestamp"][index[dt.date(2020, 9, 15)]]
    split = result["events"]["splits"].pop(next(iter(result["events"]["splits"])))
    result["events"]["splits"] = {str(moved): {**split, "date": moved}}
    result["events"]["dividends"][str(paid)] = {"amount": 0.2, "date": paid}
    replay.serve("AAPL", body)

    history = make_source().price_history(["AAPL"], dt.date(2020, 9, 1), dt.date(2020, 9, 30))

    quote = result["indicators"]["quote"][0]
    day = index[dt.date(2020, 9, 30)]
    stored = row(history.prices, "AAPL", dt.date(2020, 9, 30))
    assert stored["close"] == quote["close"][day] * 4
    assert stored["volume"] == round(quote["volume"][day] / 4)
    assert history.prices["trade_date"].max() == dt.date(2020, 9, 30)
    assert history.actions[["ex_date", "action", "value"]].to_dict("records") == [
        {"ex_date": dt.date(2020, 9, 15), "action": "dividend", "value": 0.8},
    ]
