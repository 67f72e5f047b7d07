"""Replays recorded Yahoo chart responses to the real yfinance, so tests never touch the network.

yfinance makes three kinds of calls: a cookie from fc.yahoo.com, a crumb from /v1/test/getcrumb
and the chart itself from /v8/finance/chart/<SYMBOL> (once with `range=1d` to learn the ticker's
timezone, then once with period1/period2 for the bars). `YahooReplay` answers all three with the
`responses` library and records every chart request so tests can count them per symbol.
"""

from __future__ import annotations

import copy
import datetime as dt
import json
import re
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit
from zoneinfo import ZoneInfo

import requests
import responses

CHART_URL = re.compile(
    r"https://query[12]\.finance\.yahoo\.com/v8/finance/chart/(?P<symbol>[^/?]+)"
)
CRUMB_URL = re.compile(r"https://query[12]\.finance\.yahoo\.com/v1/test/getcrumb")
COOKIE_URL = "https://fc.yahoo.com/"
# yfinance falls back to this consent page when a request fails with its "basic" cookie strategy.
CONSENT_URL = re.compile(r"https://guce\.yahoo\.com/.*")

# yfinance caches the cookie and reloads it by name (A3) and expiry, so both must be present.
# The expiry must be before 2033: yfinance reads an epoch above 2e9 as milliseconds, so a cookie
# of 2100 counts as expired in 1970 and is fetched again before every request (Yahoo's A3 cookie
# lives about a year).
COOKIE_HEADER = "A3=d=replay; Expires=Thu, 01 Jan 2032 00:00:00 GMT; Domain=.yahoo.com; Path=/"
SYDNEY = ZoneInfo("Australia/Sydney")

# A reply is (HTTP status, JSON body) or an exception to raise as a network error.
Reply = tuple[int, dict[str, Any]] | Exception


def load_chart_body(fixtures_dir: Path, name: str) -> dict[str, Any]:
    """The recorded chart body (`bodyJson`) of `yahoo-chart/<name>`."""
    recorded = json.loads((fixtures_dir / "yahoo-chart" / name).read_text())
    return recorded["response"]["bodyJson"]


def chart_result(body: dict[str, Any]) -> dict[str, Any]:
    """The single result of a chart body (meta, timestamp, events, indicators)."""
    return body["chart"]["result"][0]


def not_found_body(symbol: str) -> dict[str, Any]:
    """What Yahoo answers (with HTTP 404) for a symbol it does not know."""
    error = {"code": "Not Found", "description": "No data found, symbol may be delisted"}
    return {"chart": {"result": None, "error": error}}


def with_symbol(body: dict[str, Any], symbol: str) -> dict[str, Any]:
    """A copy of `body` served under another symbol (same bars)."""
    derived = copy.deepcopy(body)
    chart_result(derived)["meta"]["symbol"] = symbol
    return derived


def asx_body(body: dict[str, Any], symbol: str) -> dict[str, Any]:
    """A copy of a US body as the ASX would send it: each bar stamped 10:00 Sydney on its date.

    During Sydney daylight saving (UTC+11) 10:00 is 23:00 UTC the previous day, so a source that
    takes the UTC date would shift those bars by one day.
    """
    derived = copy.deepcopy(body)
    result = chart_result(derived)
    source_tz = ZoneInfo(result["meta"]["exchangeTimezoneName"])
    meta = result["meta"]
    meta.update(
        symbol=symbol,
        exchangeName="ASX",
        fullExchangeName="ASX",
        exchangeTimezoneName="Australia/Sydney",
        timezone="AEDT",
        gmtoffset=39600,
        currency="AUD",
    )
    for period in meta.get("currentTradingPeriod", {}).values():
        period.update(timezone="AEDT", gmtoffset=39600)
    result["timestamp"] = [sydney_ten_am(ts, source_tz) for ts in result["timestamp"]]
    for kind, events in result.get("events", {}).items():
        moved = {}
        for event in events.values():
            event["date"] = sydney_ten_am(event["date"], source_tz)
            moved[str(event["date"])] = event
        result["events"][kind] = moved
    return derived


def sydney_ten_am(timestamp: int, source_tz: ZoneInfo) -> int:
    """The epoch of 10:00 Sydney on the local date (in `source_tz`) of `timestamp`."""
    local_date = dt.datetime.fromtimestamp(timestamp, source_tz).date()
    return int(dt.datetime.combine(local_date, dt.time(10), SYDNEY).timestamp())


def bar_dates(body: dict[str, Any]) -> list[dt.date]:
    """The exchange-local date of every bar in a chart body."""
    result = chart_result(body)
    tz = ZoneInfo(result["meta"]["exchangeTimezoneName"])
    return [dt.datetime.fromtimestamp(ts, tz).date() for ts in result["timestamp"]]


@dataclass
class ChartRequest:
    """One chart request yfinance made."""

    symbol: str
    params: dict[str, str]

    @property
    def is_range(self) -> bool:
        """A request for bars over period1..period2 (the other kind only looks up the timezone)."""
        return "period1" in self.params

    @property
    def period(self) -> tuple[dt.datetime, dt.datetime]:
        """The requested [period1, period2) as UTC datetimes."""
        return tuple(  # type: ignore[return-value]
            dt.datetime.fromtimestamp(int(self.params[key]), dt.UTC)
            for key in ("period1", "period2")
        )


@dataclass
class YahooReplay:
    """Answers yfinance's calls from queued replies per symbol; the last reply repeats."""

    rsps: responses.RequestsMock
    replies: dict[str, list[Reply]] = field(default_factory=lambda: defaultdict(list))
    requests_seen: list[ChartRequest] = field(default_factory=list)

    def install(self) -> None:
        self.rsps.add(
            responses.GET, COOKIE_URL, status=200, body="", headers={"Set-Cookie": COOKIE_HEADER}
        )
        self.rsps.add(responses.GET, CRUMB_URL, status=200, body="replay-crumb")
        self.rsps.add(responses.GET, CONSENT_URL, status=200, body="<html></html>")
        self.rsps.add_callback(responses.GET, CHART_URL, callback=self._answer)

    def serve(self, symbol: str, *replies: Reply | dict[str, Any]) -> None:
        """Queue replies for `symbol`; a bare dict is a 200 with that body."""
        for reply in replies:
            self.replies[symbol].append((200, reply) if isinstance(reply, dict) else reply)

    def chart_requests(self, symbol: str | None = None) -> list[ChartRequest]:
        return [r for r in self.requests_seen if symbol is None or r.symbol == symbol]

    def range_requests(self, symbol: str) -> list[ChartRequest]:
        return [r for r in self.chart_requests(symbol) if r.is_range]

    def _answer(self, request: requests.PreparedRequest) -> tuple[int, dict[str, str], str]:
        url = urlsplit(request.url or "")
        match = CHART_URL.match(f"{url.scheme}://{url.netloc}{url.path}")
        assert match is not None
        symbol = match.group("symbol")
        params = {key: values[0] for key, values in parse_qs(url.query).items()}
        self.requests_seen.append(ChartRequest(symbol, params))
        queue = self.replies.get(symbol)
        if not queue:
            return 404, {}, json.dumps(not_found_body(symbol))
        reply = queue.pop(0) if len(queue) > 1 else queue[0]
        if isinstance(reply, Exception):
            raise reply
        status, body = reply
        return status, {"Content-Type": "application/json"}, json.dumps(body)


def too_many_requests() -> tuple[int, dict[str, Any]]:
    """Yahoo's rate-limit answer."""
    return 429, {"finance": {"error": {"code": "Too Many Requests"}}}


def reset_yfinance_state() -> None:
    """Forget what yfinance remembered earlier in this process, so tests do not leak into each
    other: it memoises past-range chart responses (lru_cache on YfData.cache_get), keeps one
    YfData singleton with its cookie strategy, and binds its SQLite caches on first use.
    These are yfinance internals, touched only here in the tests.
    """
    import yfinance as yf
    from yfinance import cache, data

    # The Yahoo source turns yfinance's hiding of exceptions off for its process.
    yf.config.debug.hide_exceptions = True
    data.YfData.cache_get.cache_clear()
    data.SingletonMeta._instances.pop(data.YfData, None)
    cache._TzCacheManager._tz_cache = None
    cache._CookieCacheManager._Cookie_cache = None
