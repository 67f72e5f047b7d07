"""The fake Yahoo (asx_pipeline_tests/fake_yahoo.py), proven against the real yfinance.

Each fault is shown with the exception yfinance raises for it (with hide_exceptions False, as the
yahoo source runs it) and the exact requests it took: yfinance asks the cookie and the crumb once
per process, looks a ticker's timezone up once (then caches it on disk), and repeats a request that
got an HTTP status >= 400 once, after fetching a crumb with its other cookie strategy.
"""

from __future__ import annotations

import os

# yfinance picks its HTTP backend at import; the loopback session is a plain requests.Session.
os.environ.setdefault("YF_DISABLE_CURL_CFFI", "1")

import datetime as dt
import json
import threading
import time
from collections.abc import Iterator
from itertools import pairwise
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import requests
import yfinance as yf
from yfinance.exceptions import (
    YFDataException,
    YFPricesMissingError,
    YFRateLimitError,
    YFTzMissingError,
)

from asx_pipeline.calendar import sessions_between
from asx_pipeline_tests.fake_yahoo import (
    ANY_SYMBOL,
    ChartKind,
    Endpoint,
    FakeYahoo,
    Fault,
    Junk,
    LeftLoopbackError,
    loopback_session,
    reset_yfinance,
    sydney_epoch,
)
from asx_pipeline_tests.sources.yahoo_replay import SYDNEY, bar_dates, chart_result

SLOW_SECONDS = 1.0  # how late a Fault.TIMEOUT answer comes
CLIENT_TIMEOUT = 0.3  # what the tests give yfinance; well under SLOW_SECONDS
CHART = "https://query2.finance.yahoo.com/v8/finance/chart"
RANGE = (dt.date(2025, 3, 3), dt.date(2025, 3, 31))


@pytest.fixture
def fake(fixtures_dir: Path) -> Iterator[FakeYahoo]:
    with FakeYahoo(fixtures_dir, slow_seconds=SLOW_SECONDS) as server:
        yield server


@pytest.fixture(autouse=True)
def fresh_yfinance(tmp_path: Path) -> Iterator[None]:
    """A fresh yfinance per test (no memoised responses, cookie, crumb or cached timezones),
    raising its errors instead of logging them."""
    reset_yfinance(tmp_path / "yfinance-cache")
    hidden = yf.config.debug.hide_exceptions
    yf.config.debug.hide_exceptions = False
    yield
    yf.config.debug.hide_exceptions = hidden
    reset_yfinance()


@pytest.fixture
def session(fake: FakeYahoo) -> Iterator[requests.Session]:
    with loopback_session(fake) as loopback:
        yield loopback


def history(
    session: requests.Session,
    symbol: str,
    first: dt.date,
    end: dt.date,
    timeout: float = CLIENT_TIMEOUT,
) -> pd.DataFrame:
    """One ticker's daily bars for [first, end), called as the yahoo source calls yfinance."""
    return yf.Ticker(symbol, session=session).history(
        start=first.isoformat(),
        end=end.isoformat(),
        interval="1d",
        auto_adjust=False,
        actions=True,
        timeout=timeout,
    )


def chart_get(session: requests.Session, symbol: str, **params: Any) -> requests.Response:
    return session.get(f"{CHART}/{symbol}", params=params, timeout=5)


def dates(frame: pd.DataFrame) -> list[dt.date]:
    return [moment.date() for moment in frame.index]


def trail(fake: FakeYahoo) -> list[tuple[str, str | None, int | None]]:
    """Every request so far as (endpoint, chart kind, status answered)."""
    return [(r.endpoint.value, r.kind and r.kind.value, r.status) for r in fake.stats().requests]


FIRST_CONTACT = [("cookie", None, 200), ("crumb", None, 200), ("chart", "timezone", 200)]


def test_a_range_request_returns_exactly_the_served_bars_on_their_sydney_dates(fake, session):
    series = fake.serve_sessions("CSL.AX", dt.date(2024, 11, 25), dt.date(2025, 2, 7))

    frame = history(session, "CSL.AX", dt.date(2024, 12, 16), dt.date(2025, 1, 10))

    expected = sessions_between(dt.date(2024, 12, 16), dt.date(2025, 1, 9))
    assert dates(frame) == expected
    assert not {dt.date(2024, 12, 25), dt.date(2024, 12, 26), dt.date(2025, 1, 1)} & set(expected)
    assert str(frame.index.tz) == "Australia/Sydney"
    for day, bar in zip(expected, frame.itertuples(), strict=True):
        served = series.served_on(day)
        assert (bar.Open, bar.High, bar.Low, bar.Close, bar._5, bar.Volume) == (
            served.open,
            served.high,
            served.low,
            served.close,
            served.adjclose,
            served.volume,
        )
    # Guard that dates can go wrong: in daylight saving 10:00 Sydney is the previous UTC day.
    stamp = sydney_epoch(expected[0], 10)
    assert dt.datetime.fromtimestamp(stamp, dt.UTC).date() == expected[0] - dt.timedelta(days=1)
    (bars,) = fake.stats().chart("CSL.AX", ChartKind.BARS)
    asked = [dt.datetime.fromtimestamp(int(bars.params[k]), SYDNEY) for k in ("period1", "period2")]
    assert asked == [
        dt.datetime(2024, 12, 16, tzinfo=SYDNEY),
        dt.datetime(2025, 1, 10, tzinfo=SYDNEY),
    ]


def test_period2_is_exclusive_and_the_timezone_lookup_gets_the_latest_bar(fake, session):
    fake.serve_sessions("CSL.AX", *RANGE)
    start, end = sydney_epoch(dt.date(2025, 3, 10), 10), sydney_epoch(dt.date(2025, 3, 14), 10)

    inside = chart_result(chart_get(session, "CSL.AX", period1=start, period2=end).json())
    latest = chart_result(chart_get(session, "CSL.AX", range="1d", interval="1d").json())
    first_bar = sydney_epoch(RANGE[0], 10)
    before = chart_result(chart_get(session, "CSL.AX", period1=0, period2=first_bar).json())

    assert bar_dates({"chart": {"result": [inside]}}) == [
        dt.date(2025, 3, d) for d in (10, 11, 12, 13)
    ]
    assert bar_dates({"chart": {"result": [latest]}}) == [dt.date(2025, 3, 31)]
    assert latest["meta"]["exchangeTimezoneName"] == "Australia/Sydney"
    # Nothing stamped before period2: Yahoo's empty shape, meta without bars.
    assert "timestamp" not in before and before["indicators"]["quote"] == [{}]


def test_a_split_and_a_dividend_are_served_restated_as_yahoo_does(fake, session):
    split_day, ex_day = dt.date(2025, 3, 20), dt.date(2025, 3, 12)
    series = fake.serve_sessions("WES.AX", *RANGE, splits={split_day: 4.0}, dividends={ex_day: 0.8})

    frame = history(session, "WES.AX", RANGE[0], RANGE[1] + dt.timedelta(days=1))

    events = frame[(frame["Dividends"] != 0) | (frame["Stock Splits"] != 0)]
    assert events[["Dividends", "Stock Splits"]].to_dict("index") == {
        pd.Timestamp(ex_day, tz=SYDNEY): {"Dividends": 0.2, "Stock Splits": 0.0},
        pd.Timestamp(split_day, tz=SYDNEY): {"Dividends": 0.0, "Stock Splits": 4.0},
    }
    before, on = (
        frame.loc[pd.Timestamp(day, tz=SYDNEY)] for day in (dt.date(2025, 3, 19), split_day)
    )
    # Yahoo divides the bars before a split by its ratio and multiplies their volume; a client
    # that undoes it gets what traded.
    traded = series.traded_on(dt.date(2025, 3, 19))
    assert (before["Close"] * 4, round(before["Volume"] / 4)) == (traded.close, traded.volume)
    assert before["Close"] == pytest.approx(traded.close / 4)
    assert on["Close"] == series.traded_on(split_day).close
    # Adj Close before the ex-date carries Yahoo's dividend factor: 1 - dividend / close before.
    prior = frame.loc[pd.Timestamp(dt.date(2025, 3, 11), tz=SYDNEY)]
    assert prior["Adj Close"] == pytest.approx(prior["Close"] * (1 - 0.2 / prior["Close"]))


def test_a_recorded_body_is_served_as_an_asx_ticker(fake, session, fixtures_dir):
    body = fake.serve_recorded("BHP.AX")
    recorded = dict(
        zip(bar_dates(body), chart_result(body)["indicators"]["quote"][0]["close"], strict=True)
    )

    frame = history(session, "BHP.AX", dt.date(2020, 10, 5), dt.date(2020, 10, 10))

    assert dates(frame) == [dt.date(2020, 10, d) for d in range(5, 10)]
    assert list(frame["Close"]) == [recorded[day] for day in dates(frame)]


def test_requests_per_history_call_in_the_normal_case(fake, session):
    for symbol in ("BHP.AX", "CBA.AX"):
        fake.serve_sessions(symbol, *RANGE)

    history(session, "BHP.AX", dt.date(2025, 3, 3), dt.date(2025, 3, 10))
    first = trail(fake)
    fake.reset_stats()
    history(session, "CBA.AX", dt.date(2025, 3, 3), dt.date(2025, 3, 10))
    second = trail(fake)
    fake.reset_stats()
    history(session, "CBA.AX", dt.date(2025, 3, 10), dt.date(2025, 3, 17))
    third = trail(fake)

    # Cookie and crumb once per process; the timezone once per ticker (then cached on disk).
    assert first == [*FIRST_CONTACT, ("chart", "bars", 200)]
    assert second == [("chart", "timezone", 200), ("chart", "bars", 200)]
    assert third == [("chart", "bars", 200)]


RETRIED = [("chart", "bars", "status"), ("crumb", None, 200), ("chart", "bars", "status")]


def retried(status: int) -> list[tuple[str, str | None, int]]:
    return [(e, k, status if s == "status" else s) for e, k, s in RETRIED]  # type: ignore[misc]


FAULTS = [
    (Fault.TOO_MANY_REQUESTS, YFRateLimitError, "Too Many Requests", retried(429)),
    (Fault.TIMEOUT, requests.exceptions.ReadTimeout, "Read timed out", [("chart", "bars", 200)]),
    (
        Fault.CONNECTION_RESET,
        requests.exceptions.ConnectionError,
        "Connection reset by peer",
        [("chart", "bars", None)],
    ),
    (
        Fault.HTML_PAGE,
        requests.exceptions.JSONDecodeError,
        "Expecting value",
        [("chart", "bars", 200)],
    ),
    (Fault.OUTAGE, YFDataException, "YAHOO! FINANCE IS CURRENTLY DOWN", retried(503)),
    (Fault.NOT_FOUND, YFPricesMissingError, "No data found, symbol may be delisted", retried(404)),
    (Fault.SERVER_ERROR, YFPricesMissingError, "$CSL.AX: Internal Server Error", retried(500)),
    (
        Fault.TRUNCATED_JSON,
        requests.exceptions.JSONDecodeError,
        "Expecting",
        [("chart", "bars", 200)],
    ),
    (Fault.EMPTY_RESULT, YFPricesMissingError, "no price data found", [("chart", "bars", 200)]),
    (Fault.NO_TIMESTAMPS, YFPricesMissingError, "no price data found", [("chart", "bars", 200)]),
]


@pytest.mark.parametrize(
    ("fault", "error", "message", "requests_made"), FAULTS, ids=[case[0].value for case in FAULTS]
)
def test_each_fault_raises_what_yfinance_raises_for_it(
    fake, session, fault, error, message, requests_made
):
    fake.serve_sessions("CSL.AX", *RANGE)
    fake.fail("CSL.AX", fault)

    with pytest.raises(error) as raised:
        history(session, "CSL.AX", *RANGE)

    assert type(raised.value) is error
    assert message in str(raised.value)
    assert trail(fake) == FIRST_CONTACT + requests_made
    assert {r.fault for r in fake.stats().chart(kind=ChartKind.BARS)} == {fault}


def test_yfinance_absorbs_one_429_and_gives_up_on_two(fake, session):
    fake.serve_sessions("CSL.AX", *RANGE)
    fake.fail("CSL.AX", Fault.TOO_MANY_REQUESTS, times=1)
    assert len(history(session, "CSL.AX", dt.date(2025, 3, 3), dt.date(2025, 3, 10))) == 5

    fake.reset_stats()
    fake.fail("CSL.AX", Fault.TOO_MANY_REQUESTS, times=2)
    with pytest.raises(YFRateLimitError):
        history(session, "CSL.AX", dt.date(2025, 3, 10), dt.date(2025, 3, 17))
    assert len(history(session, "CSL.AX", dt.date(2025, 3, 10), dt.date(2025, 3, 17))) == 5

    assert [r.status for r in fake.stats().chart(kind=ChartKind.BARS)] == [429, 429, 200]
    assert fake.stats().too_many_requests == 2


def test_faults_queue_per_symbol_then_for_any_symbol(fake, session):
    fake.serve_sessions("CSL.AX", *RANGE)
    fake.fail("CSL.AX", Fault.NOT_FOUND, times=1, kind=ChartKind.ANY)
    fake.fail("CSL.AX", Fault.SERVER_ERROR, times=1, kind=ChartKind.ANY)
    fake.fail(ANY_SYMBOL, Fault.TOO_MANY_REQUESTS, times=1, kind=ChartKind.ANY)
    fake.fail_endpoint(Endpoint.CRUMB, Fault.OUTAGE, times=1)

    statuses = [chart_get(session, "csl.ax", range="1d").status_code for _ in range(4)]
    crumbs = [session.get("https://query1.finance.yahoo.com/v1/test/getcrumb") for _ in range(2)]

    assert statuses == [404, 500, 429, 200]
    assert [(r.status_code, "Will be right back" in r.text) for r in crumbs] == [
        (503, True),
        (200, False),
    ]


def test_an_unknown_symbol_fails_with_http_404_then_with_no_timezone(fake, session):
    # yfinance falls back to quoteSummary for a missing timezone, twice per process; with
    # hide_exceptions False that 404 is raised, and only later tickers get YFTzMissingError.
    errors = []
    for symbol in ("ZZA.AX", "ZZB.AX", "ZZC.AX"):
        with pytest.raises(Exception) as raised:
            history(session, symbol, *RANGE)
        errors.append(type(raised.value))

    assert errors == [requests.exceptions.HTTPError] * 2 + [YFTzMissingError]
    assert fake.stats().by_endpoint[Endpoint.QUOTE_SUMMARY] == 4  # 2 tickers, each retried once


def test_junk_bars_reach_yfinance_as_sent(fake, session):
    series = fake.serve_sessions("JNK.AX", *RANGE)
    junk_days = dict(zip(Junk, series.sessions[1:], strict=False))
    for kind, day in junk_days.items():
        fake.junk("JNK.AX", day, kind)

    frame = history(session, "JNK.AX", RANGE[0], RANGE[1] + dt.timedelta(days=1))

    def got(kind: Junk) -> pd.Series:
        return frame.loc[pd.Timestamp(junk_days[kind], tz=SYDNEY)]

    def served(kind: Junk) -> Any:
        return series.served_on(junk_days[kind])

    # yfinance drops a bar that is null throughout, and turns a null volume into 0.
    assert junk_days[Junk.NULL_BAR] not in dates(frame)
    assert len(frame) == len(series.sessions) - 1
    for kind, column in [
        (Junk.NULL_OPEN, "Open"),
        (Junk.NULL_HIGH, "High"),
        (Junk.NULL_LOW, "Low"),
        (Junk.NULL_CLOSE, "Close"),
    ]:
        assert got(kind).isna().to_dict() == {c: c == column for c in frame.columns}
    assert got(Junk.NULL_VOLUME)["Volume"] == 0
    assert list(got(Junk.ZERO_PRICES)[["Open", "High", "Low", "Close", "Adj Close"]]) == [0.0] * 5
    assert got(Junk.ZERO_PRICES)["Volume"] == served(Junk.ZERO_PRICES).volume
    assert got(Junk.ZERO_VOLUME)["Volume"] == 0
    assert got(Junk.NEGATIVE_CLOSE)["Close"] == -served(Junk.NEGATIVE_CLOSE).close
    assert got(Junk.HIGH_BELOW_LOW)["High"] < got(Junk.HIGH_BELOW_LOW)["Low"]
    bar = got(Junk.HIGH_BELOW_OPEN_CLOSE)
    assert bar["Low"] <= bar["High"] < max(bar["Open"], bar["Close"])
    assert got(Junk.NEGATIVE_VOLUME)["Volume"] == -served(Junk.NEGATIVE_VOLUME).volume
    assert got(Junk.TIMES_100)["Close"] == pytest.approx(served(Junk.TIMES_100).close * 100)
    assert got(Junk.DIVIDED_BY_100)["Open"] == pytest.approx(served(Junk.DIVIDED_BY_100).open / 100)
    clean = frame.loc[pd.Timestamp(series.sessions[0], tz=SYDNEY)]
    assert clean["Close"] == series.served[0].close


def test_the_throttle_answers_429_above_n_per_second_and_not_at_n(fake, session):
    fake.serve_sessions("CSL.AX", *RANGE)
    fake.throttle(3)

    burst = [chart_get(session, "CSL.AX", range="1d").status_code for _ in range(4)]
    time.sleep(1.05)  # the sliding second has passed: all four arrivals have left the window
    after = [chart_get(session, "CSL.AX", range="1d").status_code for _ in range(3)]

    assert burst == [200, 200, 200, 429]
    assert after == [200, 200, 200]
    stats = fake.stats()
    assert (stats.too_many_requests, stats.peak_per_second) == (1, 4)


def test_the_throttle_counts_every_endpoint_and_yfinance_raises_rate_limit(fake, session):
    fake.serve_sessions("CSL.AX", *RANGE)
    fake.throttle(2)

    with pytest.raises(YFRateLimitError):
        history(session, "CSL.AX", *RANGE)

    # Cookie and crumb pass; the timezone lookup, its crumb and its retry are refused.
    assert trail(fake) == [
        ("cookie", None, 200),
        ("crumb", None, 200),
        ("chart", "timezone", 429),
        ("crumb", None, 429),
        ("chart", "timezone", 429),
    ]


def test_stats_count_per_endpoint_and_symbol_and_the_peak_in_flight(fake, session):
    for symbol in ("A.AX", "B.AX", "C.AX"):
        fake.serve_sessions(symbol, *RANGE)
        fake.fail(symbol, Fault.TIMEOUT, times=1, kind=ChartKind.TIMEZONE, delay=0.4)
    threads = [
        threading.Thread(target=chart_get, args=(session, symbol), kwargs={"range": "1d"})
        for symbol in ("A.AX", "B.AX", "C.AX")
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    chart_get(session, "A.AX", period1=0, period2=2**31)
    session.get("https://query1.finance.yahoo.com/v1/test/getcrumb")

    stats = fake.stats()
    assert stats.peak_in_flight == 3
    assert stats.by_symbol == {"A.AX": 2, "B.AX": 1, "C.AX": 1}
    assert stats.by_endpoint == {Endpoint.CHART: 4, Endpoint.CRUMB: 1}
    assert stats.peak_per_second == 5
    assert [r.params for r in stats.chart("A.AX", ChartKind.BARS)] == [
        {"period1": "0", "period2": str(2**31)}
    ]
    assert all(r.arrived <= later.arrived for r, later in pairwise(stats.requests))
    fake.reset_stats()
    assert fake.stats() == type(stats)(requests=(), peak_in_flight=0)


@pytest.mark.parametrize(
    "url",
    [
        "https://example.com/",
        "http://example.com/v8/finance/chart/BHP.AX",
        "https://yahoo.com.example.org/",
        "https://notyahoo.com/",
        "http://127.0.0.1:9/",
    ],
)
def test_a_host_other_than_yahoo_is_refused_before_any_connection(fake, session, url, monkeypatch):
    def no_network(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("a connection was attempted")

    monkeypatch.setattr("socket.create_connection", no_network)
    monkeypatch.setattr("urllib3.util.connection.create_connection", no_network)

    with pytest.raises(LeftLoopbackError, match="nothing leaves the machine"):
        session.get(url, timeout=1)
    assert fake.stats().requests == ()


def test_the_fake_stops_within_a_second_with_a_slow_answer_pending(fixtures_dir):
    fake = FakeYahoo(fixtures_dir).start()
    fake.serve_sessions("CSL.AX", *RANGE)
    fake.fail("CSL.AX", Fault.TIMEOUT, kind=ChartKind.ANY, delay=30)
    session = loopback_session(fake)
    loopback_session(fake).get("https://fc.yahoo.com/")  # an idle keep-alive connection too
    outcome: list[Any] = []
    client = threading.Thread(
        target=lambda: outcome.append(
            _attempt(lambda: chart_get(session, "CSL.AX", range="1d").status_code)
        )
    )
    client.start()
    time.sleep(0.2)

    started = time.monotonic()
    fake.stop()
    stopped_in = time.monotonic() - started
    client.join(timeout=2)

    assert stopped_in < 1.0
    assert not client.is_alive() and len(outcome) == 1


def _attempt(call: Any) -> Any:
    try:
        return call()
    except requests.RequestException as error:
        return error


def test_any_symbol_is_served_over_two_years_the_same_every_time(fake, session):
    first, last = dt.date(2023, 7, 3), dt.date(2025, 6, 30)
    fake.serve_any_symbol(first, last)

    one = history(session, "XYZ.AX", first, last + dt.timedelta(days=1))
    again = chart_result(chart_get(session, "XYZ.AX", period1=0, period2=2**31).json())
    other = history(session, "QRS.AX", first, last + dt.timedelta(days=1))

    assert dates(one) == dates(other) == sessions_between(first, last)
    assert len(one) > 500
    assert list(one["Close"]) == again["indicators"]["quote"][0]["close"]
    assert list(one["Close"]) != list(other["Close"])
    assert fake.series("XYZ.AX").served[-1].close == one["Close"].iloc[-1]
    assert json.loads(json.dumps(again["meta"]))["instrumentType"] == "EQUITY"
