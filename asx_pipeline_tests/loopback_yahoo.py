"""The real Yahoo source with its HTTP session routed to a fake Yahoo on 127.0.0.1.

For tests that run the Yahoo assets through Dagster (and child processes) against
`fake_yahoo.FakeYahoo`: every request still goes through yfinance, the RequestLimiter and a real
socket, only the address is the fake's.
"""

from __future__ import annotations

import os

os.environ.setdefault("YF_DISABLE_CURL_CFFI", "1")

import requests

from asx_pipeline.sources.market_data import MarketDataSource
from asx_pipeline.sources.resource import MarketDataResource
from asx_pipeline.sources.yahoo import YahooMarketData
from asx_pipeline.sources.yahoo_http import RequestLimiter
from asx_pipeline_tests.fake_yahoo import LoopbackAdapter

DIRECTORY_HEADER = '"ASX code","Company name","GICs industry group","Listing date","Market Cap"\n'


def directory_csv(codes: list[str]) -> str:
    """An ASX directory (current format) listing `codes`, the first one the largest."""
    rows = [
        f'"{code}","{code} LIMITED","Materials","01/02/2001",{(len(codes) - n) * 1_000_000_000}\n'
        for n, code in enumerate(codes)
    ]
    return DIRECTORY_HEADER + "".join(rows)


class LoopbackYahooResource(MarketDataResource):
    """The `yahoo` market-data resource, talking to the fake Yahoo on `port`."""

    port: int = 0
    # Generous: the fake answers from threads of the test's own process, which share the GIL with
    # the run, so a healthy answer on a loaded CI box can take longer than a second. Tests of
    # timeouts set a shorter one beside a Fault.TIMEOUT delay above it.
    timeout_seconds: float = 5.0
    retries: int = 1

    def _build_client(self) -> MarketDataSource:
        session = requests.Session()
        session.trust_env = False
        session.mount("https://", LoopbackAdapter(self.port, 4))
        return YahooMarketData(
            cache_dir=self.cache_dir / "yfinance",
            directory_source=self.directory_source,
            session=session,
            limiter=RequestLimiter(200.0, 2),
            max_retries=self.retries,
            timeout_seconds=self.timeout_seconds,
            retry_wait_initial=0.02,
            retry_wait_max=0.05,
        )
