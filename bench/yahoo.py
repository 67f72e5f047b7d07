"""Yahoo request-pattern benchmark: the source's path against `yf.download` batches, side by side.

Both fetch the same tickers over the same two years from a fake Yahoo on 127.0.0.1 (the real
yfinance, recorded chart bodies made ASX-like; asx_pipeline_tests/fake_yahoo.py) that answers
HTTP 429 to any request beyond `--rate` in a sliding second, as Yahoo does to bursts. Prints
requests sent, peak per second, peak in flight, 429s received, wall time and rows received;
asserts nothing. Needs the recorded fixtures (../shared/fixtures or ASX_FIXTURES_DIR).

    python bench/yahoo.py [--tickers 200] [--years 2] [--rate 2] [--concurrency 2]

- `source`: YahooMarketData as the pipeline runs it: one `Ticker.history` per ticker for the
  whole range, every HTTP request through the process's RequestLimiter.
- `download`: the path before it: `yf.download` of `--batch` tickers at a time (one request per
  ticker from yfinance's own threads), calls spaced by the same rate, failed tickers asked again
  with backoff, as sources/yahoo.py did until this benchmark was written.
"""

from __future__ import annotations

import argparse
import datetime as dt
import logging
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("YF_DISABLE_CURL_CFFI", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import pandas as pd


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--tickers", type=int, default=200)
    parser.add_argument("--years", type=float, default=2.0)
    parser.add_argument("--rate", type=float, default=2.0, help="Yahoo's (and our) requests/s")
    parser.add_argument("--concurrency", type=int, default=2)
    parser.add_argument("--batch", type=int, default=100, help="tickers per yf.download")
    parser.add_argument("--retries", type=int, default=5)
    args = parser.parse_args()

    # yf.download logs every failed batch; the table says it all.
    logging.getLogger("yfinance").setLevel(logging.CRITICAL)
    from asx_pipeline.calendar import sessions_between
    from asx_pipeline_tests.conftest import shared_fixtures_dir
    from asx_pipeline_tests.fake_yahoo import FakeYahoo

    fixtures = shared_fixtures_dir()
    if fixtures is None:
        sys.exit("recorded fixtures not found: set ASX_FIXTURES_DIR or put shared/fixtures beside")
    today = dt.date.today()
    sessions = sessions_between(today - dt.timedelta(days=round(365.25 * args.years)), today)
    first, last = sessions[0], sessions[-1]
    tickers = [f"B{n:03d}.AX" for n in range(args.tickers)]
    print(
        f"{len(tickers)} tickers x {len(sessions)} sessions ({first}..{last}); fake Yahoo answers "
        f"429 above {args.rate:g} requests/s; client rate {args.rate:g}/s, "
        f"{args.concurrency} in flight"
    )
    results = {}
    for name, fetch in (("source", _source_path), ("download", _download_path)):
        with FakeYahoo(fixtures) as fake, tempfile.TemporaryDirectory() as cache:
            fake.serve_any_symbol(first - dt.timedelta(days=30), last)
            fake.throttle(int(args.rate))
            for ticker in tickers[:1]:
                fake.series(ticker)  # build the template before the clock starts
            _reset_yfinance(Path(cache))
            started = time.monotonic()
            rows, failed = fetch(fake, Path(cache), tickers, first, last, args)
            wall = time.monotonic() - started
            results[name] = _figures(fake.stats(), wall, rows, failed, args.rate)
    _print_table(results)


def _source_path(fake, cache: Path, tickers, first, last, args) -> tuple[int, int]:
    from asx_pipeline.sources.yahoo import YahooMarketData
    from asx_pipeline.sources.yahoo_http import RequestLimiter
    from asx_pipeline_tests.fake_yahoo import loopback_session

    source = YahooMarketData(
        cache_dir=cache,
        directory_source="unused",
        session=loopback_session(fake),
        limiter=RequestLimiter(args.rate, args.concurrency),
        max_concurrency=args.concurrency,
        max_retries=args.retries,
    )
    history = source.price_history(tickers, first, last)
    return len(history.prices), len(history.failed)


def _download_path(fake, cache: Path, tickers, first, last, args) -> tuple[int, int]:
    import yfinance as yf

    from asx_pipeline.sources.yahoo_http import RequestLimiter
    from asx_pipeline_tests.fake_yahoo import loopback_session

    session = loopback_session(fake, pool_maxsize=args.batch)
    limiter = RequestLimiter(args.rate, max_in_flight=1)
    rows, pending = 0, list(tickers)
    end = (dt.date.today() + dt.timedelta(days=1)).isoformat()
    for attempt in range(args.retries + 1):
        failed: list[str] = []
        for start in range(0, len(pending), args.batch):
            batch = pending[start : start + args.batch]
            limiter.acquire()  # the old limit: spacing between yf.download calls only
            data = yf.download(
                batch,
                start=first.isoformat(),
                end=end,
                auto_adjust=False,
                actions=True,
                group_by="ticker",
                progress=False,
                session=session,
            )
            got, missing = _split(data, batch)
            rows += got
            failed += missing
        pending = failed
        if not pending:
            break
        time.sleep(min(60.0, 2.0**attempt))
    return rows, len(pending)


def _split(data: pd.DataFrame, batch: list[str]) -> tuple[int, list[str]]:
    rows, missing = 0, []
    for ticker in batch:
        if isinstance(data.columns, pd.MultiIndex) and ticker in data.columns.get_level_values(0):
            bars = data[ticker].dropna(subset=["Close"])
            if not bars.empty:
                rows += len(bars)
                continue
        missing.append(ticker)
    return rows, missing


def _reset_yfinance(cache: Path) -> None:
    from asx_pipeline_tests.fake_yahoo import reset_yfinance

    reset_yfinance(cache)


def _figures(stats, wall: float, rows: int, failed: int, rate: float) -> dict[str, str]:
    sent = len(stats.requests)
    return {
        "requests sent": str(sent),
        "peak per second": str(stats.peak_per_second),
        "peak in flight": str(stats.peak_in_flight),
        "429s received": str(stats.too_many_requests),
        "wall time (s)": f"{wall:.1f}",
        "requests / rate (s)": f"{sent / rate:.1f}",
        "wall / (requests / rate)": f"{wall / (sent / rate):.3f}",
        "rows received": str(rows),
        "tickers failed": str(failed),
    }


def _print_table(results: dict[str, dict[str, str]]) -> None:
    names = list(results)
    width = max(len(label) for label in next(iter(results.values())))
    print(f"{'':<{width}}  " + "  ".join(f"{n:>12}" for n in names))
    for label in next(iter(results.values())):
        cells = "  ".join(f"{results[n][label]:>12}" for n in names)
        print(f"{label:<{width}}  {cells}")


if __name__ == "__main__":
    main()
