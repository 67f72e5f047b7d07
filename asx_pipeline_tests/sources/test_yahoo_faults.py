"""Fault injection at the HTTP layer: the real yfinance against a fake Yahoo on 127.0.0.1.

Each fault (throttling, timeouts, resets, HTML and outage pages, JSON errors, truncated bodies,
empty results, junk bars) is planted for one ticker, and the source must return exactly the bars
of the tickers Yahoo served, name the failing ticker with its reason, and refuse junk bars one by
one. Backoff is milliseconds and the client's timeout half a second, so the module stays short.
"""

from __future__ import annotations

import os

# yfinance picks its HTTP backend at import; the loopback session is a requests.Session.
os.environ.setdefault("YF_DISABLE_CURL_CFFI", "1")

import datetime as dt
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from asx_pipeline.calendar import sessions_between
from asx_pipeline.sources.market_data import PriceHistory
from asx_pipeline.sources.yahoo import YahooMarketData
from asx_pipeline.sources.yahoo_http import RequestLimiter
from asx_pipeline_tests.fake_yahoo import (
    Endpoint,
    FakeYahoo,
    Fault,
    Junk,
    SessionSeries,
    loopback_session,
    reset_yfinance,
)

# 27 sessions with a dividend and a 2:1 split inside, and a session to plant junk on.
FIRST, LAST = dt.date(2025, 10, 1), dt.date(2025, 11, 6)
SESSIONS = sessions_between(FIRST, LAST)
SERVED_FROM = dt.date(2025, 9, 1)
JUNK_DAY = dt.date(2025, 10, 15)
TICKERS = ["BHP.AX", "CBA.AX", "CSL.AX"]


@pytest.fixture
def fake(fixtures_dir: Path, tmp_path: Path) -> Iterator[FakeYahoo]:
    reset_yfinance(tmp_path / "cache")
    with FakeYahoo(fixtures_dir, slow_seconds=1.5) as server:
        server.serve_sessions("BHP.AX", SERVED_FROM, LAST, dividends={dt.date(2025, 10, 20): 0.5})
        server.serve_sessions("CBA.AX", SERVED_FROM, LAST)
        server.serve_sessions("CSL.AX", SERVED_FROM, LAST, splits={dt.date(2025, 10, 27): 2.0})
        yield server
    reset_yfinance()


def source(fake: FakeYahoo, tmp_path: Path, **overrides: Any) -> YahooMarketData:
    options: dict[str, Any] = {
        "cache_dir": tmp_path / "cache",
        "directory_source": str(tmp_path / "directory.csv"),
        "session": loopback_session(fake),
        "limiter": RequestLimiter(200.0, max_in_flight=2),
        "max_retries": 2,
        # Well below the fake's 1.5 s Fault.TIMEOUT, well above a healthy answer on a loaded box.
        "timeout_seconds": 1.0,
        "retry_wait_initial": 0.02,
        "retry_wait_max": 0.05,
        # Through the real today, as in production: yfinance memoises answers for ranges that
        # ended in the past (and would serve a garbled one again to every retry).
    }
    options.update(overrides)
    return YahooMarketData(**options)


def expected_prices(series: SessionSeries, sessions: list[dt.date]) -> pd.DataFrame:
    """What a correct client stores for `series`: the bars as traded, in our columns."""
    rows = []
    for day in sessions:
        bar = series.traded_on(day)
        rows.append(
            {
                "trade_date": day,
                "yahoo_ticker": series.symbol,
                "open": bar.open,
                "high": bar.high,
                "low": bar.low,
                "close": bar.close,
                "adj_close": bar.adjclose,
                "volume": bar.volume,
            }
        )
    return pd.DataFrame(rows)


def prices_of(history: PriceHistory, ticker: str) -> pd.DataFrame:
    frame = history.prices[history.prices["yahoo_ticker"] == ticker]
    return frame.reset_index(drop=True)


def assert_exact_prices(history: PriceHistory, fake: FakeYahoo, ticker: str, sessions) -> None:
    got = prices_of(history, ticker)
    want = expected_prices(fake.series(ticker), sessions)
    pd.testing.assert_frame_equal(got, want, check_dtype=False, rtol=1e-12)


def test_every_ticker_served_gives_exact_rows_one_request_each(fake, tmp_path):
    history = source(fake, tmp_path).price_history(TICKERS, FIRST, LAST)

    assert history.failed == {}
    assert history.refused == []
    for ticker in TICKERS:
        assert_exact_prices(history, fake, ticker, SESSIONS)
    assert history.actions[["ex_date", "yahoo_ticker", "action", "value"]].to_dict("records") == [
        {"ex_date": dt.date(2025, 10, 20), "yahoo_ticker": "BHP.AX", "action": "dividend",
         "value": pytest.approx(0.5, rel=1e-12)},
        {"ex_date": dt.date(2025, 10, 27), "yahoo_ticker": "CSL.AX", "action": "split",
         "value": 2.0},
    ]
    stats = fake.stats()
    # One cookie, one crumb, one bars request per ticker, no timezone lookups.
    assert stats.by_endpoint == {Endpoint.COOKIE: 1, Endpoint.CRUMB: 1, Endpoint.CHART: 3}
    assert stats.peak_in_flight <= 2


# (fault, what the reason must say, whether the source retries it)
FAULTS = [
    (Fault.TOO_MANY_REQUESTS, "Yahoo answered HTTP 429 Too Many Requests", True),
    (Fault.TIMEOUT, "ReadTimeout", True),
    (Fault.CONNECTION_RESET, "ConnectionError", True),
    (Fault.HTML_PAGE, "Yahoo's answer was not valid JSON (Expecting value at char 0)", True),
    (Fault.OUTAGE, "YFDataException: *** YAHOO! FINANCE IS CURRENTLY DOWN! ***", True),
    (Fault.TRUNCATED_JSON, "Yahoo's answer was not valid JSON (", True),
    (Fault.SERVER_ERROR, "YFPricesMissingError: $CSL.AX: Internal Server Error", False),
    (Fault.NOT_FOUND, "YFPricesMissingError: $CSL.AX: No data found, symbol may be delisted",
     False),
    (Fault.EMPTY_RESULT, "YFPricesMissingError: $CSL.AX: possibly delisted; no price data found",
     False),
    (Fault.NO_TIMESTAMPS, "YFPricesMissingError: $CSL.AX: possibly delisted; no price data found",
     False),
]


@pytest.mark.parametrize(("fault", "reason", "retried"), FAULTS, ids=[f[0] for f in FAULTS])
def test_a_ticker_that_keeps_failing_is_named_and_the_others_stored(
    fake, tmp_path, fault, reason, retried
):
    fake.fail("CSL.AX", fault)

    history = source(fake, tmp_path).price_history(TICKERS, FIRST, LAST)

    assert list(history.failed) == ["CSL.AX"]
    assert history.failed["CSL.AX"].startswith(reason)
    assert ("still failing after 3 attempts" in history.failed["CSL.AX"]) == retried
    assert history.retries_exhausted == (frozenset({"CSL.AX"}) if retried else frozenset())
    for ticker in ("BHP.AX", "CBA.AX"):
        assert_exact_prices(history, fake, ticker, SESSIONS)
        # BHP and CBA were asked exactly once: one stubborn ticker costs nobody else anything.
        assert len(fake.stats().chart(ticker)) == 1
    assert "CSL.AX" not in set(history.actions["yahoo_ticker"])


@pytest.mark.parametrize(
    "fault",
    [Fault.TOO_MANY_REQUESTS, Fault.TIMEOUT, Fault.CONNECTION_RESET, Fault.OUTAGE,
     Fault.TRUNCATED_JSON],
)
def test_a_transient_fault_is_retried_until_served(fake, tmp_path, fault):
    fake.fail("CSL.AX", fault, times=2)

    history = source(fake, tmp_path).price_history(TICKERS, FIRST, LAST)

    assert history.failed == {}
    for ticker in TICKERS:
        assert_exact_prices(history, fake, ticker, SESSIONS)


# (junk planted on JUNK_DAY, the reason the bar is refused with; None: not refused)
JUNK = [
    (Junk.NULL_OPEN, "open is missing"),
    (Junk.NULL_HIGH, "high is missing"),
    (Junk.NULL_LOW, "low is missing"),
    (Junk.NULL_CLOSE, "close is missing"),
    (Junk.ZERO_PRICES, "open is 0; prices must be above zero"),
    (Junk.NEGATIVE_CLOSE, "close is -"),
    (Junk.HIGH_BELOW_LOW, "high "),
    (Junk.HIGH_BELOW_OPEN_CLOSE, " is outside the bar's range "),
    (Junk.NEGATIVE_VOLUME, "volume is -"),
    (Junk.TIMES_100, "x the previous close"),
    (Junk.DIVIDED_BY_100, "x the previous close"),
]


@pytest.mark.parametrize(("junk", "reason"), JUNK, ids=[j[0] for j in JUNK])
def test_a_junk_bar_is_refused_alone(fake, tmp_path, junk, reason):
    fake.junk("CBA.AX", JUNK_DAY, junk)

    history = source(fake, tmp_path).price_history(TICKERS, FIRST, LAST)

    assert history.failed == {}
    (refused,) = history.refused
    assert (refused.ticker, refused.session) == ("CBA.AX", JUNK_DAY)
    assert reason in refused.reason
    others = [day for day in SESSIONS if day != JUNK_DAY]
    assert_exact_prices(history, fake, "CBA.AX", others)
    for ticker in ("BHP.AX", "CSL.AX"):
        assert_exact_prices(history, fake, ticker, SESSIONS)


def test_a_refused_bar_keeps_its_days_actions(fake, tmp_path):
    # The junk is the bar, not the dividend or split that Yahoo reports on the same session:
    # both must come through, and the split must still be undone on the earlier bars.
    fake.junk("BHP.AX", dt.date(2025, 10, 20), Junk.NEGATIVE_CLOSE)
    fake.junk("CSL.AX", dt.date(2025, 10, 27), Junk.HIGH_BELOW_LOW)

    history = source(fake, tmp_path).price_history(TICKERS, FIRST, LAST)

    assert [(bar.ticker, bar.session) for bar in history.refused] == [
        ("BHP.AX", dt.date(2025, 10, 20)),
        ("CSL.AX", dt.date(2025, 10, 27)),
    ]
    actions = history.actions[["ex_date", "yahoo_ticker", "action"]].to_dict("records")
    assert actions == [
        {"ex_date": dt.date(2025, 10, 20), "yahoo_ticker": "BHP.AX", "action": "dividend"},
        {"ex_date": dt.date(2025, 10, 27), "yahoo_ticker": "CSL.AX", "action": "split"},
    ]
    kept = [day for day in SESSIONS if day != dt.date(2025, 10, 27)]
    assert_exact_prices(history, fake, "CSL.AX", kept)


def test_a_bar_with_no_fields_is_a_session_not_returned(fake, tmp_path):
    # yfinance drops an all-null bar itself: the session is simply missing for that ticker.
    fake.junk("CBA.AX", JUNK_DAY, Junk.NULL_BAR)

    history = source(fake, tmp_path).price_history(TICKERS, FIRST, LAST)

    assert history.failed == {} and history.refused == []
    assert_exact_prices(history, fake, "CBA.AX", [d for d in SESSIONS if d != JUNK_DAY])


def test_the_limiter_keeps_a_throttling_yahoo_happy(fake, tmp_path):
    # Yahoo answers 429 to anything above 5 requests in a second; the client is set to 5/s.
    fake.throttle(5)
    tickers = [f"T{n:02d}.AX" for n in range(12)]
    fake.serve_any_symbol(SERVED_FROM, LAST)
    limited = source(fake, tmp_path, limiter=RequestLimiter(5.0, max_in_flight=2), max_retries=0)

    history = limited.price_history(tickers, FIRST, LAST)

    stats = fake.stats()
    assert history.failed == {}
    assert stats.too_many_requests == 0
    assert stats.peak_per_second <= 5
    assert stats.peak_in_flight <= 2
    assert len(stats.requests) == 2 + len(tickers)


def test_without_the_limit_the_same_yahoo_throttles(fake, tmp_path):
    # The control for the test above: the fake's throttle is real.
    fake.throttle(5)
    tickers = [f"T{n:02d}.AX" for n in range(12)]
    fake.serve_any_symbol(SERVED_FROM, LAST)
    unlimited = source(fake, tmp_path, limiter=RequestLimiter(1000.0, 8), max_concurrency=8,
                       max_retries=0)

    history = unlimited.price_history(tickers, FIRST, LAST)

    assert fake.stats().too_many_requests > 0
    assert history.failed


_CHILD = textwrap.dedent(
    """
    import datetime as dt, os, sys
    os.environ["YF_DISABLE_CURL_CFFI"] = "1"
    from pathlib import Path
    from asx_pipeline.sources.yahoo import YahooMarketData
    from asx_pipeline.sources.yahoo_http import RequestLimiter
    from asx_pipeline_tests.fake_yahoo import LoopbackAdapter
    import requests

    port, cache, first, last = int(sys.argv[1]), Path(sys.argv[2]), sys.argv[3], sys.argv[4]
    session = requests.Session()
    session.trust_env = False
    session.mount("https://", LoopbackAdapter(port, 4))
    source = YahooMarketData(
        cache_dir=cache, directory_source="unused", session=session,
        limiter=RequestLimiter(100.0, 2), retry_wait_initial=0.05, retry_wait_max=0.2,
    )
    history = source.price_history(
        ["BHP.AX", "CBA.AX", "CSL.AX"], dt.date.fromisoformat(first), dt.date.fromisoformat(last)
    )
    print(len(history.prices), sorted(history.failed))
    """
)


def test_processes_sharing_a_fresh_cache_all_get_every_ticker(fake, tmp_path):
    # yfinance keeps its cookie and timezone caches in SQLite; processes that create or write
    # them at once used to lose tickers to 'UNIQUE constraint failed' or 'database is locked'.
    cache = tmp_path / "shared-cache"
    args = [str(fake.port), str(cache), FIRST.isoformat(), LAST.isoformat()]
    children = [
        subprocess.Popen(
            [sys.executable, "-c", _CHILD, *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=Path(__file__).resolve().parents[2],
        )
        for _ in range(6)
    ]
    outputs = [child.communicate(timeout=120) for child in children]

    for child, (out, err) in zip(children, outputs, strict=True):
        assert child.returncode == 0, err
        assert out.strip() == f"{3 * len(SESSIONS)} []"
