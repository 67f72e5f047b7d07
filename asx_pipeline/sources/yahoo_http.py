"""The one gate every HTTP request to Yahoo (and to the ASX directory) goes through.

Yahoo answers bursts with HTTP 429, and yfinance gives no way to bound its requests: `yf.download`
starts one thread per ticker, and each call may add a cookie, a crumb, a timezone lookup and a
retry of its own. So the limit is applied underneath yfinance, on the HTTP session itself: the
session's `request` method is wrapped, and every request of every thread of the process waits for
a `RequestLimiter` slot first. The limiter is per process and shared by every source in it, so
the daily bars, the intraday quotes and the directory download add up to one rate.

In production yfinance chooses its own session (curl_cffi impersonating a browser: Yahoo refuses
plain `requests` clients, and yfinance refuses a `requests.Session` it did not make, yfinance
issue 2496); tests hand in a `requests.Session` that talks to a fake Yahoo on 127.0.0.1.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

# A receiver counting requests over a sliding second sees network jitter too; spacing requests a
# little wider than 1/rate keeps its count at or below the rate.
_SPACING_MARGIN = 1.05


class RequestLimiter:
    """At most `per_second` request starts per second and `max_in_flight` requests at once.

    Starts are spaced at least `_SPACING_MARGIN / per_second` apart (a token bucket holding one
    token), so no one-second window ever holds more than `per_second` of them. `pause` pushes the
    next start out, for every thread, after Yahoo said 429. The clock and sleep are injectable so
    tests can check the spacing without waiting.
    """

    def __init__(
        self,
        per_second: float,
        max_in_flight: int = 2,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if per_second <= 0:
            raise ValueError(f"requests per second must be positive, got {per_second}")
        if max_in_flight < 1:
            raise ValueError(f"max in flight must be at least 1, got {max_in_flight}")
        self.per_second = per_second
        self.max_in_flight = max_in_flight
        self.interval = _SPACING_MARGIN / per_second
        self._clock = clock
        self._sleep = sleep
        self._next_free = -math.inf
        self._lock = threading.Lock()
        self._in_flight = threading.BoundedSemaphore(max_in_flight)

    def acquire(self) -> None:
        """Wait until the next request may start (the rate only, not the in-flight bound)."""
        with self._lock:
            now = self._clock()
            if now < self._next_free:
                self._sleep(self._next_free - now)
                # A sleep can overrun: space the next start from when this one really starts.
                now = max(self._clock(), self._next_free)
            self._next_free = now + self.interval

    @contextmanager
    def slot(self) -> Iterator[None]:
        """Hold one of the in-flight places for the length of a request that starts in turn."""
        with self._in_flight:
            self.acquire()
            yield

    def pause(self, seconds: float) -> None:
        """No request of this process starts for `seconds` (Yahoo asked us to slow down)."""
        with self._lock:
            self._next_free = max(self._next_free, self._clock() + seconds)


_LIMITERS: dict[tuple[float, int], RequestLimiter] = {}
_LIMITERS_LOCK = threading.Lock()


def process_limiter(per_second: float, max_in_flight: int) -> RequestLimiter:
    """The limiter of this process for these settings: every source built with the same
    ASX_YAHOO_REQUESTS_PER_SECOND and ASX_YAHOO_MAX_CONCURRENCY shares it."""
    key = (float(per_second), int(max_in_flight))
    with _LIMITERS_LOCK:
        if key not in _LIMITERS:
            _LIMITERS[key] = RequestLimiter(per_second, max_in_flight)
        return _LIMITERS[key]


def limit_session(session: Any, limiter: RequestLimiter) -> Any:
    """Make every request of `session` (requests or curl_cffi: both route `get`, `post`, ...
    through `request`) wait for a slot of `limiter`. Idempotent per session."""
    if getattr(session, "_asx_limiter", None) is limiter:
        return session
    unlimited = getattr(session, "_asx_unlimited_request", None) or session.request

    def request(*args: Any, **kwargs: Any) -> Any:
        with limiter.slot():
            return unlimited(*args, **kwargs)

    session._asx_unlimited_request = unlimited
    session._asx_limiter = limiter
    session.request = request
    return session


def yfinance_default_session() -> Any:
    """The session yfinance would make for itself (curl_cffi impersonating Chrome when it is
    installed), so production keeps yfinance's own choice while we still gate its requests."""
    # yfinance has no public factory for it; this is the one private name used from yfinance.
    from yfinance._http import new_session

    return new_session()


def directory_session(limiter: RequestLimiter) -> Any:
    """A plain requests session for the ASX website's directory download, through `limiter`."""
    import requests

    return limit_session(requests.Session(), limiter)
