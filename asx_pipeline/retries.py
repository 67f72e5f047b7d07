"""How a step that calls Yahoo is retried when it fails as a whole.

The Yahoo client already retries single requests (tenacity, seconds apart). This is the outer
layer for longer trouble (Yahoo down for minutes, the network gone): Dagster reruns the whole step
after ASX_STEP_RETRY_DELAY_SECONDS, doubling each time, with jitter so that retries of several
steps do not hit Yahoo at the same moment. `asx_symbols` uses the same policy for fetching the ASX
directory (a connection error, a timeout, HTTP 429 or 5xx). A `Failure(allow_retries=False)` (a
session that is not final, an empty universe, a directory file that is missing, empty, binary or
without its columns, an HTTP 404, an HTML page instead of the CSV) is never retried: waiting would
not change the answer.
"""

from __future__ import annotations

from dagster import Backoff, Jitter, RetryPolicy


def yahoo_retry_policy(max_retries: int, delay_seconds: float) -> RetryPolicy:
    """ASX_STEP_MAX_RETRIES reruns, the first after ASX_STEP_RETRY_DELAY_SECONDS (configured.py)."""
    return RetryPolicy(
        max_retries=max_retries,
        delay=delay_seconds,
        backoff=Backoff.EXPONENTIAL,
        jitter=Jitter.PLUS_MINUS,
    )
