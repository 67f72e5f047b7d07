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
from yfinance.data import YfData

from asx_pipeline.sources import yahoo
from asx_pipeline.sources.bar_validation import RefusedBar
from asx_pipeline.sources.market_data import ACTION_COLUMNS, PRICE_COLUMNS
from asx_pipeline.sources.yahoo import YahooMarketData
from asx_pipeline.sources.yahoo_http import RequestLimiter
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
            "limiter": RequestLimiter(1000.0, max_in_flight=2),
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
    assert history.refused == []
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
    # One request, spanning Sydney midnights from ten days before `first` (the previous close,
    # for the unit-error rule) to the day after today (end exclusive): through today, so that
    # every split after `last` is seen (see the split tests).
    (request,) = replay.chart_requests("BHP.AX")
    start, end = (moment.astimezone(SYDNEY) for moment in request.period)
    tomorrow = dt.datetime.now(SYDNEY).date() + dt.timedelta(days=1)
    lookback = FIRST - dt.timedelta(days=10)
    assert (start.date(), start.hour, end.date(), end.hour) == (lookback, 0, tomorrow, 0)


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

    assert list(history.failed) == ["ZZZ.AX"]
    reason = history.failed["ZZZ.AX"]
    assert reason == "YFPricesMissingError: $ZZZ.AX: No data found, symbol may be delisted"
    # Yahoo's own "no such data" is not retried: one request, plus yfinance's own second try
    # with its other cookie strategy on any HTTP error.
    assert len(replay.chart_requests("ZZZ.AX")) == 2
    assert history.retries_exhausted == frozenset()
    assert history.prices.groupby("yahoo_ticker").size().to_dict() == {"BHP.AX": 49, "CBA.AX": 49}


def test_ticker_without_bars_in_the_range_fails(replay, make_source, aapl, fixtures_dir):
    replay.serve("BHP.AX", asx_body(aapl, "BHP.AX"))
    replay.serve("OLD.AX", asx_body(load_chart_body(fixtures_dir, AAPL_JAN_2020), "OLD.AX"))

    history = make_source().price_history(["BHP.AX", "OLD.AX"], FIRST, LAST)

    assert history.failed == {"OLD.AX": "no bars between 2020-08-31 and 2020-11-07"}
    assert set(history.prices["yahoo_ticker"]) == {"BHP.AX"}


def test_rate_limited_then_answered(replay, make_source, aapl):
    replay.serve("BHP.AX", too_many_requests(), too_many_requests(), asx_body(aapl, "BHP.AX"))

    history = make_source(max_retries=2).price_history(["BHP.AX"], FIRST, LAST)

    assert history.failed == {}
    assert len(history.prices) == 49
    # yfinance asks again once itself on any HTTP error (switching cookie strategy), so both
    # 429s land in our first attempt; the second attempt gets the data.
    assert len(replay.chart_requests("BHP.AX")) == 3


def test_network_error_is_retried(replay, make_source, aapl):
    replay.serve("BHP.AX", requests.ConnectionError("connection reset"), asx_body(aapl, "BHP.AX"))

    history = make_source(max_retries=1).price_history(["BHP.AX"], FIRST, LAST)

    assert history.failed == {}
    assert len(history.prices) == 49


def test_a_stubborn_ticker_is_named_and_the_others_are_returned(replay, make_source, aapl):
    replay.serve("BHP.AX", asx_body(aapl, "BHP.AX"))
    replay.serve("CBA.AX", too_many_requests())

    history = make_source(max_retries=3).price_history(["BHP.AX", "CBA.AX"], FIRST, LAST)

    assert history.failed == {
        "CBA.AX": "Yahoo answered HTTP 429 Too Many Requests (still failing after 4 attempts)"
    }
    assert history.retries_exhausted == frozenset({"CBA.AX"})
    assert set(history.prices["yahoo_ticker"]) == {"BHP.AX"}
    # BHP was asked once; CBA four times, each with yfinance's own second try.
    assert len(replay.chart_requests("BHP.AX")) == 1
    assert len(replay.chart_requests("CBA.AX")) == 8


def test_each_ticker_is_one_request_for_the_whole_range(replay, make_source, aapl):
    tickers = ["BHP.AX", "CBA.AX", "WES.AX"]
    for ticker in tickers:
        replay.serve(ticker, asx_body(aapl, ticker))

    history = make_source().price_history(tickers, FIRST, LAST)

    tomorrow = dt.datetime.now(SYDNEY).date() + dt.timedelta(days=1)
    for ticker in tickers:
        # One request for the bars and none to learn the timezone: every .AX ticker trades in
        # Sydney, which the source tells yfinance's timezone cache.
        (bars,) = replay.chart_requests(ticker)
        assert bars.is_range
        assert bars.period[1].astimezone(SYDNEY).date() == tomorrow
    assert len(history.prices) == 3 * 49


def test_a_ticker_outside_the_asx_costs_one_timezone_lookup_once(
    replay, make_source, aapl, tmp_path
):
    replay.serve("AAPL", aapl)
    source = make_source()

    source.price_history(["AAPL"], FIRST, LAST)
    assert (tmp_path / "cache" / "tkr-tz.db").exists()
    YfData.cache_get.cache_clear()  # forget the memoised response, keep the tz cache
    source.price_history(["AAPL"], FIRST, LAST)

    requests_made = replay.chart_requests("AAPL")
    assert [r.is_range for r in requests_made] == [False, True, True]


def junk_body(aapl: dict[str, Any], symbol: str, field: str, value: Any, bar: int = 2):
    body = asx_body(aapl, symbol)
    chart_result(body)["indicators"]["quote"][0][field][bar] = value
    return body


def test_a_junk_bar_is_refused_alone_and_named(replay, make_source, aapl):
    quote = chart_result(aapl)["indicators"]["quote"][0]
    third = bar_dates(aapl)[2]
    replay.serve("BHP.AX", asx_body(aapl, "BHP.AX"))
    replay.serve("NEG.AX", junk_body(aapl, "NEG.AX", "close", -131.4))
    replay.serve("NUL.AX", junk_body(aapl, "NUL.AX", "open", None))
    replay.serve("INV.AX", junk_body(aapl, "INV.AX", "high", quote["low"][2] - 1))
    replay.serve("VOL.AX", junk_body(aapl, "VOL.AX", "volume", -5))
    cents = asx_body(aapl, "CTS.AX")
    for field in ("open", "high", "low", "close"):
        chart_result(cents)["indicators"]["quote"][0][field][2] *= 100
    replay.serve("CTS.AX", cents)
    tickers = ["BHP.AX", "NEG.AX", "NUL.AX", "INV.AX", "VOL.AX", "CTS.AX"]

    history = make_source().price_history(tickers, FIRST, LAST)

    assert history.failed == {}
    low, jump = quote["low"][2], quote["close"][2] * 100 / quote["close"][1]
    assert [str(bar) for bar in history.refused] == [
        f"CTS.AX {third}: close {quote['close'][2] * 100:.6g} is {jump:.4g}x the previous close "
        f"{quote['close'][1]:.6g} with no split that day: looks like cents and dollars mixed up",
        f"INV.AX {third}: high {low - 1:.6g} is below low {low:.6g}",
        f"NEG.AX {third}: close is -131.4; prices must be above zero",
        f"NUL.AX {third}: open is missing",
        f"VOL.AX {third}: volume is -5; it must not be negative",
    ]
    assert all(isinstance(bar, RefusedBar) for bar in history.refused)
    # Every other session of those tickers is there, and nothing of the refused one.
    sizes = history.prices.groupby("yahoo_ticker").size().to_dict()
    assert sizes == {"BHP.AX": 49, **{t: 48 for t in tickers[1:]}}
    refused_rows = history.prices[
        (history.prices["trade_date"] == third) & (history.prices["yahoo_ticker"] != "BHP.AX")
    ]
    assert refused_rows.empty
    # The bar after the cents one is compared with the last good close, so it passes.
    assert row(history.prices, "CTS.AX", bar_dates(aapl)[3])["close"] == quote["close"][3]


def test_a_body_yfinance_cannot_parse_fails_only_that_ticker(replay, make_source, aapl):
    replay.serve("BHP.AX", asx_body(aapl, "BHP.AX"))
    replay.serve("TXT.AX", junk_body(aapl, "TXT.AX", "close", "n/a"))

    history = make_source().price_history(["BHP.AX", "TXT.AX"], FIRST, LAST)

    assert history.failed == {"TXT.AX": "ValueError: could not convert string to float: 'n/a'"}
    assert set(history.prices["yahoo_ticker"]) == {"BHP.AX"}


def test_a_nonsense_split_fails_the_ticker():
    index = pd.DatetimeIndex(["2020-10-05 10:00", "2020-10-06 10:00"]).tz_localize(SYDNEY)
    frame = pd.DataFrame(
        {
            "Open": [1.0, 1.0],
            "High": [1.0, 1.0],
            "Low": [1.0, 1.0],
            "Close": [1.0, 1.0],
            "Adj Close": [1.0, 1.0],
            "Volume": [1, 1],
            "Dividends": [0.0, 0.0],
        },
        index=index,
    )
    first, last = dt.date(2020, 10, 5), dt.date(2020, 10, 6)

    missing = yahoo._to_canonical("X.AX", frame, first, last).failure
    frame["Stock Splits"] = [0.0, -2.0]
    negative = yahoo._to_canonical("X.AX", frame, first, last).failure
    frame["Stock Splits"] = [0.0, "2:1"]
    text = yahoo._to_canonical("X.AX", frame, first, last).failure

    assert missing == "Yahoo response lacks columns: ['Stock Splits']"
    assert negative == "negative or infinite Stock Splits on 2020-10-06: -2.0"
    assert text == "non-numeric Stock Splits on 2020-10-06: '2:1'"


def test_limiter_spaces_starts_without_sleeping_for_real():
    now = [100.0]
    sleeps: list[float] = []

    def sleep(seconds: float) -> None:
        sleeps.append(seconds)
        now[0] += seconds

    limiter = RequestLimiter(4.0, clock=lambda: now[0], sleep=sleep)
    limiter.acquire()
    limiter.acquire()
    now[0] += 0.1
    limiter.acquire()
    now[0] += 10
    limiter.acquire()
    limiter.pause(3.0)
    limiter.acquire()

    # 1.05 / 4 s apart (a little wider than 1/rate, for the receiver's sake), and a pause holds.
    assert sleeps == [pytest.approx(0.2625), pytest.approx(0.1625), pytest.approx(3.0)]


def test_every_http_request_passes_the_limiter(replay, make_source, aapl):
    tickers = ["BHP.AX", "CBA.AX", "WES.AX"]
    for ticker in tickers:
        replay.serve(ticker, asx_body(aapl, ticker))
    starts: list[float] = []
    limiter = RequestLimiter(0.5, clock=lambda: 0.0, sleep=starts.append)

    make_source(limiter=limiter).price_history(tickers, FIRST, LAST)

    # The cookie, the crumb and three charts: five requests, four of them made to wait (the
    # clock stands still, so each waits for a whole interval).
    assert len(replay.rsps.calls) == 5
    assert len(starts) == 4


def test_directory_is_loaded_once_through_the_source_session(make_source, monkeypatch, tmp_path):
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
    assert source.session is session and session._asx_limiter is source.limiter
    pd.testing.assert_frame_equal(first, directory)
    pd.testing.assert_frame_equal(second, directory)


def test_served_symbol_copies_are_independent(aapl):
    # The replay helpers must never mutate the loaded fixture body in place.
    before = copy.deepcopy(aapl)
    asx_body(aapl, "BHP.AX")
    with_symbol(aapl, "MSFT")
    assert aapl == before


def test_which_failures_are_worth_a_retry():
    import json

    import peewee
    from yfinance.exceptions import (
        YFDataException,
        YFPricesMissingError,
        YFRateLimitError,
        YFTzMissingError,
    )

    worth = [
        YFRateLimitError(),
        YFDataException("*** YAHOO! FINANCE IS CURRENTLY DOWN! ***"),
        requests.ConnectionError("Connection aborted."),
        requests.ReadTimeout("read timed out"),
        json.JSONDecodeError("Expecting value", "<html>", 0),
        peewee.OperationalError("database is locked"),
        peewee.IntegrityError("UNIQUE constraint failed: _cookieschema.strategy"),
    ]
    final = [
        YFPricesMissingError("ZZZ.AX", "(1d 2020-08-21 -> 2020-11-08)"),
        YFTzMissingError("ZZZ.AX"),
        ValueError("could not convert string to float: 'n/a'"),
        KeyError("volume"),
    ]

    assert [yahoo.is_transient(error) for error in worth] == [True] * len(worth)
    assert [yahoo.is_transient(error) for error in final] == [False] * len(final)


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
