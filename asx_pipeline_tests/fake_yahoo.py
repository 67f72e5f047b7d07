"""A fake Yahoo Finance on 127.0.0.1, for fault-injection tests and benchmarks.

`yahoo_replay.py` answers yfinance inside `requests` (the `responses` library), which cannot show
what happens on a real socket: timeouts, connection resets, keep-alive, many threads at once, a
server that counts requests per second. `FakeYahoo` is a real HTTP server on a free loopback port;
`loopback_session` gives yfinance a `requests.Session` whose transport sends every `*.yahoo.com`
URL to it (and refuses every other host, so nothing can leave the machine).

It answers what yfinance asks for one `Ticker.history` call:
- `https://fc.yahoo.com/` - the cookie (a `Set-Cookie` with `Expires`, a year ahead as Yahoo's);
- `/v1/test/getcrumb` on query1/query2 - the crumb;
- `https://guce.yahoo.com/consent` - a consent page without a form, so yfinance's second cookie
  strategy finds no token and falls back to the first, as it does when Yahoo shows no consent;
- `/v8/finance/chart/<SYMBOL>` - with `range=1d` (yfinance's timezone lookup: the latest bar) or
  `period1`/`period2` (epoch seconds, `period2` exclusive: only the bars stamped inside);
- `/v10/finance/quoteSummary/<SYMBOL>` and `/v7/finance/quote` - answered as for an unknown
  symbol; yfinance only asks them when a timezone lookup found nothing.

Bodies are real recorded Yahoo responses (`../shared/fixtures/yahoo-chart/`), either served as
recorded (`serve`, `serve_recorded`) or stretched over XASX sessions (`serve_sessions`,
`serve_any_symbol`) for long ranges. Faults (`fail`, `fail_endpoint`, `throttle`) and junk bars
(`junk`) are injected per symbol; `stats()` tells what arrived and what was answered.
"""

from __future__ import annotations

import bisect
import contextlib
import copy
import datetime as dt
import email.utils
import json
import math
import os
import socket
import struct
import sys
import threading
import time
import zlib
from collections import Counter, deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from enum import StrEnum
from fractions import Fraction
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit, urlunsplit
from zoneinfo import ZoneInfo

import requests
from requests.adapters import HTTPAdapter

from asx_pipeline.calendar import sessions_between
from asx_pipeline_tests.sources.yahoo_replay import (
    SYDNEY,
    asx_body,
    chart_result,
    load_chart_body,
    not_found_body,
    reset_yfinance_state,
)

# yfinance picks its HTTP backend when first imported; a requests.Session needs plain requests.
os.environ.setdefault("YF_DISABLE_CURL_CFFI", "1")

# The richest recorded body: 49 clean daily bars, a 4:1 split and a dividend.
DEFAULT_TEMPLATE = "chart-AAPL-2020-08-31-to-2020-11-07.json"
# yfinance's own User-Agent when it runs on plain requests (yfinance/_http.py).
BROWSER_USER_AGENT = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 "
    "(KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36"
)
ANY_SYMBOL = "*"

# What Yahoo's edge answers with HTTP 429 (yfinance issue 2284 shows it arriving as the crumb).
TOO_MANY_REQUESTS_TEXT = "Edge: Too Many Requests"
# Yahoo's maintenance page; yfinance looks for "Will be right back" in the chart response.
OUTAGE_PAGE = (
    '<!DOCTYPE html><html lang="en-us"><head><title>Yahoo</title></head><body>'
    "<h1>Will be right back...</h1><p>Thank you for your patience.</p>"
    "<p>Our engineers are working quickly to resolve the issue.</p></body></html>"
)
# A page where JSON was expected, as a captive portal or a consent wall would send.
HTML_PAGE = (
    "<!DOCTYPE html><html><head><title>Yahoo Finance</title></head>"
    "<body><p>Please enable JavaScript to continue.</p></body></html>"
)
# The consent page without a csrfToken input: yfinance's 'csrf' cookie strategy gives up on it.
CONSENT_PAGE = "<!DOCTYPE html><html><head><title>Yahoo</title></head><body></body></html>"
SERVER_ERROR_DESCRIPTION = "Internal Server Error"

# Bars a `range=` request returns (yfinance only ever asks `range=1d`, for the timezone).
_RANGE_BARS = {"1d": 1, "5d": 5}
_PRICE_FIELDS = ("open", "high", "low", "close")


class Fault(StrEnum):
    """What a faulty answer looks like; the exception yfinance raises for each is in the tests."""

    TOO_MANY_REQUESTS = "too_many_requests"  # 429 "Edge: Too Many Requests"
    TIMEOUT = "timeout"  # the normal answer, but only after `slow_seconds`
    CONNECTION_RESET = "connection_reset"  # the socket closed with RST, no response at all
    HTML_PAGE = "html_page"  # 200 text/html where JSON was expected
    OUTAGE = "outage"  # 503 with Yahoo's "Will be right back" page
    NOT_FOUND = "not_found"  # 404 chart error "No data found, symbol may be delisted"
    SERVER_ERROR = "server_error"  # 500 chart error "Internal Server Error"
    TRUNCATED_JSON = "truncated_json"  # 200, the first half of the normal body
    EMPTY_RESULT = "empty_result"  # 200 {"chart": {"result": [], "error": null}}
    NO_TIMESTAMPS = "no_timestamps"  # 200, a result with meta but no bars


class Junk(StrEnum):
    """A broken bar, as Yahoo sometimes sends one; applied to one session of one symbol."""

    NULL_BAR = "null_bar"  # open/high/low/close/volume/adjclose all null
    NULL_OPEN = "null_open"  # one field null: JSON has no NaN, Yahoo sends null
    NULL_HIGH = "null_high"
    NULL_LOW = "null_low"
    NULL_CLOSE = "null_close"
    NULL_VOLUME = "null_volume"
    ZERO_PRICES = "zero_prices"  # open/high/low/close/adjclose 0, volume kept
    ZERO_VOLUME = "zero_volume"
    NEGATIVE_CLOSE = "negative_close"  # close = -close
    HIGH_BELOW_LOW = "high_below_low"  # high set 1% below low
    HIGH_BELOW_OPEN_CLOSE = "high_below_open_close"  # high halfway between low and max(open, close)
    NEGATIVE_VOLUME = "negative_volume"  # volume = -volume
    TIMES_100 = "times_100"  # prices in cents: open/high/low/close/adjclose x 100
    DIVIDED_BY_100 = "divided_by_100"  # the other way: / 100


class Endpoint(StrEnum):
    COOKIE = "cookie"
    CRUMB = "crumb"
    CONSENT = "consent"
    CHART = "chart"
    QUOTE_SUMMARY = "quote_summary"
    QUOTE = "quote"
    OTHER = "other"


class ChartKind(StrEnum):
    """Which chart requests of a symbol a fault applies to."""

    BARS = "bars"  # period1/period2: the history itself
    TIMEZONE = "timezone"  # range=1d: yfinance's timezone lookup (its timeout is fixed at 10 s)
    ANY = "any"


@dataclass(frozen=True)
class SeenRequest:
    """One request the fake received, and what it answered (None: the connection was reset)."""

    method: str
    host: str
    path: str
    endpoint: Endpoint
    symbol: str | None
    params: dict[str, str]
    arrived: float  # time.monotonic()
    status: int | None = None
    fault: Fault | None = None

    @property
    def kind(self) -> ChartKind | None:
        return chart_kind(self.endpoint, self.params)


def chart_kind(endpoint: Endpoint, params: Mapping[str, str]) -> ChartKind | None:
    """BARS for a period1/period2 chart request, TIMEZONE for a `range=` one, else None."""
    if endpoint is not Endpoint.CHART:
        return None
    return ChartKind.BARS if "period1" in params else ChartKind.TIMEZONE


@dataclass(frozen=True)
class Stats:
    """A snapshot of what the fake saw since it started or `reset_stats()`."""

    requests: tuple[SeenRequest, ...]  # in order of arrival
    peak_in_flight: int

    @property
    def by_endpoint(self) -> Counter[Endpoint]:
        return Counter(r.endpoint for r in self.requests)

    @property
    def by_symbol(self) -> Counter[str]:
        return Counter(r.symbol for r in self.requests if r.symbol is not None)

    @property
    def too_many_requests(self) -> int:
        """How many 429s were sent."""
        return sum(r.status == 429 for r in self.requests)

    @property
    def peak_per_second(self) -> int:
        """The most arrivals in any one-second sliding window."""
        arrivals = [r.arrived for r in self.requests]
        peak, first = 0, 0
        for last, moment in enumerate(arrivals):
            while arrivals[first] <= moment - 1.0:
                first += 1
            peak = max(peak, last - first + 1)
        return peak

    def chart(
        self, symbol: str | None = None, kind: ChartKind = ChartKind.ANY
    ) -> list[SeenRequest]:
        """The chart requests (of `symbol`, of `kind`)."""
        return [
            r
            for r in self.requests
            if r.endpoint is Endpoint.CHART
            and (symbol is None or r.symbol == symbol)
            and (kind is ChartKind.ANY or r.kind is kind)
        ]


@dataclass(frozen=True)
class Bar:
    open: float | None
    high: float | None
    low: float | None
    close: float | None
    adjclose: float | None
    volume: int | None


@dataclass(frozen=True)
class SessionSeries:
    """A synthetic ticker over XASX sessions: the body Yahoo would serve, and what really traded.

    Yahoo restates every bar before a split: prices divided by the ratio, volume multiplied, and
    dividends before it divided too. `served` is that (the body's bars); `traded` undoes it
    (`served price x ratio`, `round(served volume / ratio)`, dividends as paid) and is what a
    correct client stores. `adjclose` is Yahoo's in both.
    """

    symbol: str
    sessions: tuple[dt.date, ...]
    served: tuple[Bar, ...]
    traded: tuple[Bar, ...]
    splits: Mapping[dt.date, float]  # ratio new/old, 4.0 for 4:1
    dividends: Mapping[dt.date, float]  # cash per share as paid on the ex-date
    body: dict[str, Any] = field(repr=False)

    def served_on(self, day: dt.date) -> Bar:
        return self.served[self.sessions.index(day)]

    def traded_on(self, day: dt.date) -> Bar:
        return self.traded[self.sessions.index(day)]

    def served_dividend(self, day: dt.date) -> float:
        """The dividend as Yahoo sends it: divided by the splits after its ex-date."""
        return self.dividends[day] / later_split_factor(day, self.splits)


# --- chart bodies ------------------------------------------------------------------------------


def sydney_epoch(day: dt.date, hour: int, minute: int = 0) -> int:
    return int(dt.datetime.combine(day, dt.time(hour, minute), SYDNEY).timestamp())


def later_split_factor(day: dt.date, splits: Mapping[dt.date, float]) -> float:
    """How much Yahoo divides a price of `day` by: the product of the splits after it."""
    return math.prod(ratio for split_day, ratio in splits.items() if split_day > day)


def build_session_series(
    template: dict[str, Any],
    symbol: str,
    sessions: Sequence[dt.date],
    splits: Mapping[dt.date, float] | None = None,
    dividends: Mapping[dt.date, float] | None = None,
) -> SessionSeries:
    """A body over `sessions` with the structure of `template` (a recorded chart body).

    Bars are the template's bars walked forth and back (so the series has no jump where it
    wraps), shifted and scaled by a hash of `symbol` so tickers differ but never change between
    runs, and stamped 10:00 Sydney like real ASX daily bars.
    """
    splits, dividends = dict(splits or {}), dict(dividends or {})
    if not sessions:
        raise ValueError(f"{symbol}: no sessions to serve")
    for name, events in (("split", splits), ("dividend", dividends)):
        strays = sorted(day for day in events if day not in sessions)
        if strays:
            raise ValueError(f"{symbol}: {name} dates that are not served sessions: {strays}")
    base = _cycled_bars(template, symbol, len(sessions))
    factors = [later_split_factor(day, splits) for day in sessions]
    served_dividends = {
        d: amount / later_split_factor(d, splits) for d, amount in dividends.items()
    }
    adjust = _dividend_adjustment(sessions, [bar.close for bar in base], served_dividends)
    served, traded = [], []
    for bar, factor, dividend_factor in zip(base, factors, adjust, strict=True):
        adjclose = bar.close * dividend_factor  # type: ignore[operator]
        volume = round(bar.volume * factor)  # type: ignore[operator]
        served.append(Bar(bar.open, bar.high, bar.low, bar.close, adjclose, volume))
        traded.append(
            Bar(
                *(price * factor for price in (bar.open, bar.high, bar.low, bar.close)),  # type: ignore[operator]
                adjclose=adjclose,
                volume=round(volume / factor),
            )
        )
    body = _session_body(template, symbol, sessions, served, splits, served_dividends)
    return SessionSeries(
        symbol, tuple(sessions), tuple(served), tuple(traded), splits, dividends, body
    )


def _cycled_bars(template: dict[str, Any], symbol: str, count: int) -> list[Bar]:
    quote = chart_result(template)["indicators"]["quote"][0]
    clean = [
        i
        for i in range(len(quote["close"]))
        if all(quote[key][i] is not None for key in (*_PRICE_FIELDS, "volume"))
    ]
    digest = zlib.crc32(symbol.encode())
    price_scale = 0.05 * 40 ** ((digest % 10007) / 10007)  # ~$5 to ~$250 from AAPL's ~$120
    volume_scale = 0.002 + 0.05 * ((digest >> 8) % 997) / 997
    period = max(1, 2 * len(clean) - 2)
    phase = (digest >> 16) % period
    bars = []
    for n in range(count):
        step = (n + phase) % period
        i = clean[step if step < len(clean) else period - step]
        prices = [round(quote[key][i] * price_scale, 4) for key in _PRICE_FIELDS]
        volume = max(1, round(quote["volume"][i] * volume_scale))
        bars.append(Bar(*prices, adjclose=None, volume=volume))
    return bars


def _dividend_adjustment(
    sessions: Sequence[dt.date], closes: Sequence[float | None], dividends: Mapping[dt.date, float]
) -> list[float]:
    """Yahoo's adjclose factor per bar: for each later dividend, 1 - amount / close before it."""
    factors = [1.0] * len(sessions)
    for ex_date, amount in dividends.items():
        ex_index = sessions.index(ex_date)
        if ex_index == 0:
            continue
        multiplier = 1 - amount / closes[ex_index - 1]  # type: ignore[operator]
        for i in range(ex_index):
            factors[i] *= multiplier
    return factors


def _session_body(
    template: dict[str, Any],
    symbol: str,
    sessions: Sequence[dt.date],
    bars: Sequence[Bar],
    splits: Mapping[dt.date, float],
    dividends: Mapping[dt.date, float],
) -> dict[str, Any]:
    stamps = [sydney_epoch(day, 10) for day in sessions]
    at = dict(zip(sessions, stamps, strict=True))
    events: dict[str, dict[str, Any]] = {}
    if dividends:
        events["dividends"] = {
            str(at[d]): {"amount": amount, "date": at[d]} for d, amount in sorted(dividends.items())
        }
    if splits:
        events["splits"] = {str(at[d]): split_event(at[d], r) for d, r in sorted(splits.items())}
    result: dict[str, Any] = {
        "meta": asx_meta(chart_result(template)["meta"], symbol, sessions, bars),
        "timestamp": stamps,
    }
    if events:
        result["events"] = events
    result["indicators"] = {
        "quote": [{key: [getattr(bar, key) for bar in bars] for key in (*_PRICE_FIELDS, "volume")}],
        "adjclose": [{"adjclose": [bar.adjclose for bar in bars]}],
    }
    return {"chart": {"result": [result], "error": None}}


def split_event(timestamp: int, ratio: float) -> dict[str, Any]:
    """A split as Yahoo writes it: numerator:denominator, 4:1 for a ratio of 4."""
    fraction = Fraction(ratio).limit_denominator(1000)
    numerator, denominator = fraction.numerator, fraction.denominator
    return {
        "date": timestamp,
        "numerator": numerator,
        "denominator": denominator,
        "splitRatio": f"{numerator}:{denominator}",
    }


def asx_meta(
    template_meta: Mapping[str, Any], symbol: str, sessions: Sequence[dt.date], bars: Sequence[Bar]
) -> dict[str, Any]:
    """A chart `meta` as Yahoo sends it for an ASX equity whose latest session is the last one."""
    last = sessions[-1]
    offset = dt.datetime.combine(last, dt.time(10), SYDNEY).utcoffset() or dt.timedelta()
    gmtoffset = int(offset.total_seconds())
    zone = "AEDT" if gmtoffset == 39600 else "AEST"
    year = bars[-252:]

    def period(start: int, end: int) -> dict[str, Any]:
        return {"timezone": zone, "start": start, "end": end, "gmtoffset": gmtoffset}

    return {
        "currency": "AUD",
        "symbol": symbol,
        "exchangeName": "ASX",
        "fullExchangeName": "ASX",
        "instrumentType": "EQUITY",
        "firstTradeDate": sydney_epoch(sessions[0], 10),
        "regularMarketTime": sydney_epoch(last, 16, 10),
        "hasPrePostMarketData": False,
        "gmtoffset": gmtoffset,
        "timezone": zone,
        "exchangeTimezoneName": "Australia/Sydney",
        "regularMarketPrice": bars[-1].close,
        "fiftyTwoWeekHigh": max(bar.high for bar in year),  # type: ignore[type-var]
        "fiftyTwoWeekLow": min(bar.low for bar in year),  # type: ignore[type-var]
        "regularMarketDayHigh": bars[-1].high,
        "regularMarketDayLow": bars[-1].low,
        "regularMarketVolume": bars[-1].volume,
        "longName": f"{symbol.split('.')[0]} Fake Limited",
        "shortName": f"{symbol.split('.')[0]} FAKE",
        "chartPreviousClose": bars[0].close,
        "priceHint": 2 if (bars[-1].close or 0) >= 1 else 3,
        "currentTradingPeriod": {
            "pre": period(sydney_epoch(last, 7), sydney_epoch(last, 10)),
            "regular": period(sydney_epoch(last, 10), sydney_epoch(last, 16)),
            "post": period(sydney_epoch(last, 16), sydney_epoch(last, 16, 12)),
        },
        "dataGranularity": "1d",
        "range": "",
        "validRanges": list(template_meta.get("validRanges", ["1d", "5d", "1mo", "max"])),
    }


def slice_bars(result: Mapping[str, Any], start: int, end: int) -> dict[str, Any]:
    """The result with only the bars and events stamped in [start, end), as Yahoo answers
    period1/period2; no bars at all comes back as Yahoo's empty shape (meta, no timestamp)."""
    stamps = result.get("timestamp", [])
    first, stop = bisect.bisect_left(stamps, start), bisect.bisect_left(stamps, end)
    return _bars_between(result, first, stop, lambda ts: start <= ts < end)


def latest_bars(result: Mapping[str, Any], count: int | None) -> dict[str, Any]:
    """The result with its last `count` bars (all when None), as a `range=` request answers."""
    stamps = result.get("timestamp", [])
    first = 0 if count is None else max(0, len(stamps) - count)
    since = stamps[first] if stamps else 0
    return _bars_between(result, first, len(stamps), lambda ts: ts >= since)


def _bars_between(
    result: Mapping[str, Any], first: int, stop: int, keep_event: Callable[[int], bool]
) -> dict[str, Any]:
    sliced: dict[str, Any] = {"meta": copy.deepcopy(result["meta"])}
    if first >= stop:
        sliced["indicators"] = {name: [{}] for name in result.get("indicators", {"quote": []})}
        return sliced
    sliced["timestamp"] = result["timestamp"][first:stop]
    events = {
        kind: {key: dict(event) for key, event in found.items() if keep_event(event["date"])}
        for kind, found in result.get("events", {}).items()
    }
    if any(events.values()):
        sliced["events"] = {kind: found for kind, found in events.items() if found}
    sliced["indicators"] = {
        name: [{key: values[first:stop] for key, values in series[0].items()}]
        for name, series in result["indicators"].items()
    }
    return sliced


def no_bars_result(result: Mapping[str, Any]) -> dict[str, Any]:
    """Yahoo's answer for a range without bars: the meta, no timestamps, empty indicators."""
    return slice_bars(result, 0, 0)


def apply_junk(result: dict[str, Any], junk: Mapping[dt.date, Sequence[Junk]]) -> dict[str, Any]:
    """Break the bars of `result` (a sliced copy, changed in place) on the given exchange dates."""
    if not junk or "timestamp" not in result:
        return result
    tz = ZoneInfo(result["meta"]["exchangeTimezoneName"])
    quote = result["indicators"]["quote"][0]
    adjclose = result["indicators"].get("adjclose", [{}])[0].get("adjclose")
    for i, stamp in enumerate(result["timestamp"]):
        for kind in junk.get(dt.datetime.fromtimestamp(stamp, tz).date(), ()):
            bar = {key: quote[key][i] for key in (*_PRICE_FIELDS, "volume")}
            bar["adjclose"] = adjclose[i] if adjclose is not None else None
            _JUNK[kind](bar)
            for key in (*_PRICE_FIELDS, "volume"):
                quote[key][i] = bar[key]
            if adjclose is not None:
                adjclose[i] = bar["adjclose"]
    return result


def _scale_prices(bar: dict[str, Any], factor: float) -> None:
    for key in (*_PRICE_FIELDS, "adjclose"):
        if bar[key] is not None:
            bar[key] = bar[key] * factor


def _high_below_open_close(bar: dict[str, Any]) -> None:
    bar["high"] = (bar["low"] + max(bar["open"], bar["close"])) / 2


_JUNK: dict[Junk, Callable[[dict[str, Any]], None]] = {
    Junk.NULL_BAR: lambda bar: bar.update(dict.fromkeys(bar)),
    Junk.NULL_OPEN: lambda bar: bar.update(open=None),
    Junk.NULL_HIGH: lambda bar: bar.update(high=None),
    Junk.NULL_LOW: lambda bar: bar.update(low=None),
    Junk.NULL_CLOSE: lambda bar: bar.update(close=None),
    Junk.NULL_VOLUME: lambda bar: bar.update(volume=None),
    Junk.ZERO_PRICES: lambda bar: bar.update(dict.fromkeys((*_PRICE_FIELDS, "adjclose"), 0.0)),
    Junk.ZERO_VOLUME: lambda bar: bar.update(volume=0),
    Junk.NEGATIVE_CLOSE: lambda bar: bar.update(close=-bar["close"]),
    Junk.HIGH_BELOW_LOW: lambda bar: bar.update(high=round(bar["low"] * 0.99, 4)),
    Junk.HIGH_BELOW_OPEN_CLOSE: _high_below_open_close,
    Junk.NEGATIVE_VOLUME: lambda bar: bar.update(volume=-(bar["volume"] or 1)),
    Junk.TIMES_100: lambda bar: _scale_prices(bar, 100),
    Junk.DIVIDED_BY_100: lambda bar: _scale_prices(bar, 0.01),
}


def chart_error_body(code: str, description: str) -> dict[str, Any]:
    return {"chart": {"result": None, "error": {"code": code, "description": description}}}


# --- the server --------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Reply:
    status: int
    body: bytes
    content_type: str = "application/json;charset=utf-8"
    headers: tuple[tuple[str, str], ...] = ()


def _json_reply(status: int, body: Any) -> _Reply:
    return _Reply(status, json.dumps(body, separators=(",", ":")).encode())


def _html_reply(status: int, page: str) -> _Reply:
    return _Reply(status, page.encode(), "text/html; charset=UTF-8")


_RESET = _Reply(0, b"")  # not an answer: close the connection with RST


@dataclass
class _Rule:
    fault: Fault
    remaining: int | None  # None: for ever
    kind: ChartKind
    delay: float | None

    def matches(self, kind: ChartKind | None) -> bool:
        return kind is None or self.kind is ChartKind.ANY or self.kind is kind


@dataclass(frozen=True)
class _Incoming:
    method: str
    host: str
    path: str
    endpoint: Endpoint
    symbol: str | None
    params: dict[str, str]
    arrived: float

    @property
    def kind(self) -> ChartKind | None:
        return chart_kind(self.endpoint, self.params)


@dataclass
class _Record:
    """Where a request's SeenRequest is kept while it is answered."""

    seen: SeenRequest


def classify(host: str, path: str) -> tuple[Endpoint, str | None]:
    """Which Yahoo endpoint a request is for, and the symbol it names."""
    host = host.split(":")[0].lower()
    if host in ("guce.yahoo.com", "consent.yahoo.com"):
        return Endpoint.CONSENT, None
    if host == "fc.yahoo.com":
        return Endpoint.COOKIE, None
    if path == "/v1/test/getcrumb":
        return Endpoint.CRUMB, None
    for prefix, endpoint in (
        ("/v8/finance/chart/", Endpoint.CHART),
        ("/v10/finance/quoteSummary/", Endpoint.QUOTE_SUMMARY),
    ):
        if path.startswith(prefix) and len(path) > len(prefix):
            return endpoint, unquote(path[len(prefix) :])
    if path.rstrip("?") == "/v7/finance/quote":
        return Endpoint.QUOTE, None
    return Endpoint.OTHER, None


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128  # a benchmark's thread pool connects at once

    def __init__(self, fake: FakeYahoo) -> None:
        self.fake = fake
        self.connections: set[socket.socket] = set()
        self.connections_lock = threading.Lock()
        super().__init__(("127.0.0.1", 0), _Handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        with self.connections_lock:
            self.connections.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self.connections_lock:
            self.connections.discard(request)
        super().shutdown_request(request)

    def drop_connections(self) -> None:
        """End keep-alive connections, so their handler threads stop waiting for a request."""
        with self.connections_lock:
            open_now = list(self.connections)
        for connection in open_now:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as a real client pool expects
    server_version = "ATS"  # what Yahoo's edge calls itself
    sys_version = ""
    timeout = 10  # an idle keep-alive connection ends on its own
    server: _Server

    def do_GET(self) -> None:
        self.server.fake._handle(self)

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)
        self.server.fake._handle(self)

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: the stats say what happened."""

    def handle(self) -> None:
        # The client may go away (it timed out) or we reset the connection ourselves.
        with contextlib.suppress(ConnectionError, TimeoutError, ValueError, OSError):
            super().handle()

    def send_reply(self, reply: _Reply) -> None:
        self.send_response(reply.status)
        self.send_header("Content-Type", reply.content_type)
        self.send_header("Content-Length", str(len(reply.body)))
        for name, value in reply.headers:
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(reply.body)

    def reset(self) -> None:
        """Close with SO_LINGER 0: the kernel sends RST instead of FIN, like a dropped proxy."""
        self.close_connection = True
        self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.rfile.close()
        self.wfile.close()
        self.connection.close()


class FakeYahoo:
    """Yahoo's cookie, crumb and chart endpoints on 127.0.0.1, with faults on demand.

    Use as a context manager (or `start()`/`stop()`); give yfinance `loopback_session(fake)`.
    `slow_seconds` is how long a `Fault.TIMEOUT` answer waits: longer than the client's timeout
    in a test, short enough that a test never waits long. Symbols match case-insensitively, as
    on Yahoo (yfinance upper-cases tickers); a symbol never served gets Yahoo's 404 "No data
    found" chart body, unless `serve_any_symbol` was called.
    """

    def __init__(
        self, fixtures_dir: Path, *, slow_seconds: float = 1.5, template: str = DEFAULT_TEMPLATE
    ) -> None:
        self.fixtures_dir = Path(fixtures_dir)
        self.slow_seconds = slow_seconds
        self.template_name = template
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._charts: dict[str, dict[str, Any]] = {}  # symbol -> chart result (never mutated)
        self._series: dict[str, SessionSeries] = {}
        self._any_symbol: tuple[dt.date, dt.date, str] | None = None
        self._templates: dict[str, dict[str, Any]] = {}
        self._rules: dict[str, deque[_Rule]] = {}
        self._junk: dict[str, dict[dt.date, list[Junk]]] = {}
        self._throttle: int | None = None
        self._window: deque[float] = deque()
        self._seen: list[_Record] = []  # in order of arrival
        self._in_flight = 0
        self._peak_in_flight = 0
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle --

    def start(self) -> FakeYahoo:
        self._stopping.clear()
        self._server = _Server(self)
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop accepting, wake slow answers and end open connections (well under a second)."""
        if self._server is None:
            return
        self._stopping.set()
        self._server.shutdown()
        self._server.drop_connections()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=1)
        self._server = self._thread = None

    def __enter__(self) -> FakeYahoo:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("FakeYahoo is not running: use it as a context manager")
        return self._server.server_address[1]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    # -- what to serve --

    def template(self, name: str | None = None) -> dict[str, Any]:
        """A recorded chart body from the fixtures (a fresh copy each time)."""
        name = name or self.template_name
        with self._lock:
            if name not in self._templates:
                self._templates[name] = load_chart_body(self.fixtures_dir, name)
            return copy.deepcopy(self._templates[name])

    def serve(self, symbol: str, body: Mapping[str, Any]) -> None:
        """Serve `body` (a chart body: {"chart": {"result": [...]}}) for `symbol`; a range
        request gets the bars of it stamped inside the range."""
        result = copy.deepcopy(chart_result(dict(body)))
        result["meta"]["symbol"] = symbol.upper()
        with self._lock:
            self._charts[symbol.upper()] = result

    def serve_recorded(self, symbol: str, name: str | None = None) -> dict[str, Any]:
        """Serve a recorded body as an ASX one (`yahoo_replay.asx_body`); returns the body."""
        body = asx_body(self.template(name), symbol)
        chart_result(body)["meta"]["instrumentType"] = "EQUITY"
        self.serve(symbol, body)
        return body

    def serve_sessions(
        self,
        symbol: str,
        first: dt.date,
        last: dt.date,
        *,
        splits: Mapping[dt.date, float] | None = None,
        dividends: Mapping[dt.date, float] | None = None,
        template: str | None = None,
    ) -> SessionSeries:
        """Serve a synthetic `symbol` with one bar per XASX session in [first, last]; optional
        splits (ratio new/old) and dividends (cash as paid) on chosen sessions."""
        series = build_session_series(
            self.template(template), symbol, sessions_between(first, last), splits, dividends
        )
        self.serve(symbol, series.body)
        with self._lock:
            self._series[symbol.upper()] = series
        return series

    def serve_any_symbol(self, first: dt.date, last: dt.date, template: str | None = None) -> None:
        """Serve every symbol not served otherwise as `serve_sessions` would (built on first
        request, the same bars every time): a benchmark can ask any number of tickers."""
        with self._lock:
            self._any_symbol = (first, last, template or self.template_name)

    def series(self, symbol: str) -> SessionSeries:
        """The synthetic series served for `symbol` (its truth: what traded)."""
        self._chart_for(symbol)
        with self._lock:
            return self._series[symbol.upper()]

    # -- faults --

    def fail(
        self,
        symbol: str,
        fault: Fault,
        *,
        times: int | None = None,
        kind: ChartKind = ChartKind.BARS,
        delay: float | None = None,
    ) -> None:
        """Answer the next `times` chart requests of `symbol` (all of them when None) of `kind`
        with `fault`. Rules queue up: `fail(s, A, times=1); fail(s, B, times=1)` is A, then B,
        then normal. `symbol` may be ANY_SYMBOL ("*"), consulted after a symbol's own rules.
        `delay` overrides `slow_seconds` for Fault.TIMEOUT."""
        self._add_rule(symbol.upper(), _Rule(fault, times, kind, delay))

    def fail_endpoint(self, endpoint: Endpoint, fault: Fault, *, times: int | None = None) -> None:
        """Answer the next `times` requests to a non-chart endpoint (cookie, crumb, ...)."""
        if endpoint is Endpoint.CHART:
            raise ValueError("chart faults are per symbol: use fail(symbol, ...)")
        self._add_rule(f"endpoint:{endpoint}", _Rule(fault, times, ChartKind.ANY, None))

    def _add_rule(self, key: str, rule: _Rule) -> None:
        if rule.remaining is not None and rule.remaining < 1:
            raise ValueError(f"times must be at least 1 (or None for always), got {rule.remaining}")
        with self._lock:
            self._rules.setdefault(key, deque()).append(rule)

    def clear_faults(self) -> None:
        with self._lock:
            self._rules.clear()
            self._junk.clear()
            self._throttle = None

    def junk(self, symbol: str, day: dt.date, *kinds: Junk) -> None:
        """Break `symbol`'s bar of `day` (its exchange-local date) in every answer from now on."""
        with self._lock:
            self._junk.setdefault(symbol.upper(), {}).setdefault(day, []).extend(kinds)

    def throttle(self, max_per_second: int | None) -> None:
        """Answer 429 to any request (every endpoint) while more than `max_per_second` requests
        arrived in the last second, this one included; None turns it off."""
        with self._lock:
            self._throttle = max_per_second

    # -- statistics --

    def stats(self) -> Stats:
        with self._lock:
            return Stats(tuple(r.seen for r in self._seen), self._peak_in_flight)

    def reset_stats(self) -> None:
        with self._lock:
            self._seen.clear()
            self._peak_in_flight = self._in_flight

    # -- answering (called on the server's threads) --

    def _handle(self, handler: _Handler) -> None:
        incoming, record = self._arrive(handler)
        try:
            reply, fault, delay = self._decide(incoming)
            # Settled before answering, so the stats are complete once the client has its
            # answer (or its reset, or its timeout).
            with self._lock:
                status = None if reply is _RESET else reply.status
                record.seen = replace(record.seen, status=status, fault=fault)
            if delay:
                self._stopping.wait(delay)
            if reply is _RESET:
                handler.reset()
            else:
                handler.send_reply(reply)
        finally:
            with self._lock:
                self._in_flight -= 1

    def _arrive(self, handler: _Handler) -> tuple[_Incoming, _Record]:
        url = urlsplit(handler.path)
        host = handler.headers.get("Host", "")
        endpoint, symbol = classify(host, url.path)
        params = {k: v[0] for k, v in parse_qs(url.query, keep_blank_values=True).items()}
        if endpoint is Endpoint.QUOTE:
            symbol = params.get("symbols")
        with self._lock:
            incoming = _Incoming(
                handler.command, host, url.path, endpoint, symbol, params, time.monotonic()
            )
            record = _Record(SeenRequest(**incoming.__dict__))
            self._seen.append(record)
            self._in_flight += 1
            self._peak_in_flight = max(self._peak_in_flight, self._in_flight)
        return incoming, record

    def _decide(self, incoming: _Incoming) -> tuple[_Reply, Fault | None, float]:
        """The reply, the fault behind it, and how long to wait before sending it."""
        if self._throttled(incoming.arrived):
            return _too_many_requests(), None, 0.0
        rule = self._take_rule(incoming)
        if rule is None:
            return self._normal_reply(incoming), None, 0.0
        if rule.fault is Fault.TIMEOUT:
            delay = self.slow_seconds if rule.delay is None else rule.delay
            return self._normal_reply(incoming), rule.fault, delay
        return self._fault_reply(incoming, rule.fault), rule.fault, 0.0

    def _throttled(self, arrived: float) -> bool:
        with self._lock:
            self._window.append(arrived)
            while self._window and self._window[0] <= arrived - 1.0:
                self._window.popleft()
            return self._throttle is not None and len(self._window) > self._throttle

    def _take_rule(self, incoming: _Incoming) -> _Rule | None:
        if incoming.endpoint is Endpoint.CHART:
            keys = [(incoming.symbol or "").upper(), ANY_SYMBOL]
        else:
            keys = [f"endpoint:{incoming.endpoint}"]
        with self._lock:
            for key in keys:
                rules = self._rules.get(key, deque())
                for rule in rules:
                    if rule.matches(incoming.kind):
                        if rule.remaining is not None:
                            rule.remaining -= 1
                            if rule.remaining == 0:
                                rules.remove(rule)
                        return rule
        return None

    def _normal_reply(self, incoming: _Incoming) -> _Reply:
        endpoint = incoming.endpoint
        if endpoint is Endpoint.COOKIE:
            return _Reply(200, b"", "text/html; charset=UTF-8", (("Set-Cookie", cookie_header()),))
        if endpoint is Endpoint.CRUMB:
            return _Reply(200, b"fake-crumb", "text/plain;charset=utf-8")
        if endpoint is Endpoint.CONSENT:
            return _html_reply(200, CONSENT_PAGE)
        if endpoint is Endpoint.CHART:
            return self._chart_reply(incoming)
        if endpoint is Endpoint.QUOTE_SUMMARY:
            error = {
                "code": "Not Found",
                "description": f"Quote not found for symbol: {incoming.symbol}",
            }
            return _json_reply(404, {"quoteSummary": {"result": None, "error": error}})
        if endpoint is Endpoint.QUOTE:
            return _json_reply(200, {"quoteResponse": {"result": [], "error": None}})
        return _html_reply(404, "<html><body>Not Found</body></html>")

    def _chart_reply(self, incoming: _Incoming) -> _Reply:
        symbol = (incoming.symbol or "").upper()
        result = self._chart_for(symbol)
        if result is None:
            return _json_reply(404, not_found_body(symbol))
        params = incoming.params
        if incoming.kind is ChartKind.BARS:
            end = int(params["period2"]) if "period2" in params else 2**62
            answer = slice_bars(result, int(params["period1"]), end)
        else:
            answer = latest_bars(result, _RANGE_BARS.get(params.get("range", "")))
            answer["meta"]["range"] = params.get("range", "")
        with self._lock:
            junk = {day: list(kinds) for day, kinds in self._junk.get(symbol, {}).items()}
        return _json_reply(200, {"chart": {"result": [apply_junk(answer, junk)], "error": None}})

    def _chart_for(self, symbol: str) -> dict[str, Any] | None:
        symbol = symbol.upper()
        with self._lock:
            if symbol in self._charts or self._any_symbol is None or symbol == ANY_SYMBOL:
                return self._charts.get(symbol)
            first, last, template = self._any_symbol
        self.serve_sessions(symbol, first, last, template=template)
        with self._lock:
            return self._charts[symbol]

    def _fault_reply(self, incoming: _Incoming, fault: Fault) -> _Reply:
        if fault is Fault.TOO_MANY_REQUESTS:
            return _too_many_requests()
        if fault is Fault.CONNECTION_RESET:
            return _RESET
        if fault is Fault.HTML_PAGE:
            return _html_reply(200, HTML_PAGE)
        if fault is Fault.OUTAGE:
            return _html_reply(503, OUTAGE_PAGE)
        if fault is Fault.NOT_FOUND:
            return _json_reply(404, not_found_body(incoming.symbol or ""))
        if fault is Fault.SERVER_ERROR:
            return _json_reply(
                500, chart_error_body(SERVER_ERROR_DESCRIPTION, SERVER_ERROR_DESCRIPTION)
            )
        if fault is Fault.TRUNCATED_JSON:
            whole = self._normal_reply(incoming).body
            return _Reply(200, whole[: len(whole) // 2])
        if fault is Fault.EMPTY_RESULT:
            return _json_reply(200, {"chart": {"result": [], "error": None}})
        if fault is Fault.NO_TIMESTAMPS:
            result = self._chart_for(incoming.symbol or "")
            meta_only = no_bars_result(result) if result else {"meta": {}, "indicators": {}}
            return _json_reply(200, {"chart": {"result": [meta_only], "error": None}})
        raise AssertionError(f"unhandled fault {fault}")


def _too_many_requests() -> _Reply:
    return _Reply(429, TOO_MANY_REQUESTS_TEXT.encode(), "text/plain;charset=utf-8")


def cookie_header(now: dt.datetime | None = None) -> str:
    """Yahoo's A3 cookie, expiring a year ahead as the real one does.

    Not a far-future date: yfinance reads an expiry above 2e9 (2033) as milliseconds and then
    treats its cached cookie as expired, fetching a new one before every request.
    """
    expires = (now or dt.datetime.now(dt.UTC)) + dt.timedelta(days=365)
    stamp = email.utils.format_datetime(expires.astimezone(dt.UTC), usegmt=True)
    return f"A3=d=fake&S=loopback; Expires={stamp}; Domain=.yahoo.com; Path=/; SameSite=None"


# --- the client side ---------------------------------------------------------------------------


class LeftLoopbackError(requests.exceptions.InvalidURL):
    """A request for a host that is not Yahoo's: refused, so tests never reach the network."""


def is_yahoo_host(host: str) -> bool:
    host = host.lower().rstrip(".")
    return host == "yahoo.com" or host.endswith(".yahoo.com")


class LoopbackAdapter(HTTPAdapter):
    """Sends `https://*.yahoo.com/...` to the fake over a real socket, keeping path, query and
    Host header; the response keeps the original URL so cookies and redirects look like Yahoo's."""

    def __init__(self, port: int, pool_maxsize: int = 32) -> None:
        self.port = port
        super().__init__(pool_connections=1, pool_maxsize=pool_maxsize)

    def send(  # type: ignore[override]
        self, request: requests.PreparedRequest, **kwargs: Any
    ) -> requests.Response:
        url = urlsplit(request.url or "")
        if not is_yahoo_host(url.hostname or ""):
            raise LeftLoopbackError(
                f"refusing {request.method} {request.url}: only *.yahoo.com goes to the fake "
                "Yahoo on 127.0.0.1, nothing leaves the machine",
                request=request,
            )
        routed = request.copy()
        routed.url = urlunsplit(("http", f"127.0.0.1:{self.port}", url.path or "/", url.query, ""))
        routed.headers["Host"] = url.netloc
        kwargs["proxies"] = {}  # never an environment proxy
        response = super().send(routed, **kwargs)
        response.url = request.url or ""
        response.request = request
        return response


def loopback_session(fake: FakeYahoo, pool_maxsize: int = 32) -> requests.Session:
    """A `requests.Session` for yfinance that reaches only `fake` (browser-like headers as
    yfinance's own fallback session; `pool_maxsize` should cover the client's threads)."""
    _refuse_curl_backend()
    session = requests.Session()
    session.trust_env = False  # no proxies or netrc from the environment
    session.headers.update(
        {
            "User-Agent": BROWSER_USER_AGENT,
            "Accept": "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8",
            "Accept-Language": "en-US,en;q=0.5",
        }
    )
    adapter = LoopbackAdapter(fake.port, pool_maxsize)
    session.mount("https://", adapter)
    session.mount("http://", adapter)
    return session


def _refuse_curl_backend() -> None:
    http = sys.modules.get("yfinance._http")
    if http is not None and getattr(http, "HAS_CURL_CFFI", False):
        raise RuntimeError(
            "yfinance was imported with its curl_cffi backend; set YF_DISABLE_CURL_CFFI=1 before "
            "importing yfinance so it speaks plain requests (and raises requests' exceptions)"
        )


def reset_yfinance(tz_cache_dir: Path | None = None) -> None:
    """Give yfinance the state of a fresh process: `yahoo_replay.reset_yfinance_state` (memoised
    responses, the YfData singleton with its cookie and crumb, SQLite caches), plus the count of
    timezone fallbacks to `Ticker.info` (two per process), and point its caches at
    `tz_cache_dir` so the timezone and cookie caches start empty."""
    reset_yfinance_state()
    from yfinance import base

    base._tz_info_fetch_ctr = 0
    if tz_cache_dir is not None:
        import yfinance as yf

        Path(tz_cache_dir).mkdir(parents=True, exist_ok=True)
        yf.set_tz_cache_location(str(tz_cache_dir))
