"""Shared test fixtures: where the recorded real-world data lives, and a clean environment."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

# yfinance picks its HTTP backend when it is first imported, by whichever test module gets there
# first. Tests only ever talk to recorded or fake Yahoo answers through plain `requests` (the
# `responses` library and the loopback session need it), never to Yahoo itself.
os.environ["YF_DISABLE_CURL_CFFI"] = "1"

REPO_ROOT = Path(__file__).resolve().parents[1]


def shared_fixtures_dir() -> Path | None:
    """`ASX_FIXTURES_DIR`, else `../shared/fixtures` beside the clone; None when absent."""
    configured = os.environ.get("ASX_FIXTURES_DIR")
    candidate = Path(configured) if configured else REPO_ROOT.parent / "shared" / "fixtures"
    return candidate if candidate.is_dir() else None


@pytest.fixture
def fixtures_dir() -> Path:
    """The recorded Yahoo responses and ASX directory files (skips when they are absent)."""
    found = shared_fixtures_dir()
    if found is None:
        pytest.skip(
            "recorded fixtures not found: set ASX_FIXTURES_DIR or put shared/fixtures beside "
            "the clone (they are published by others and never copied into this repo)"
        )
    return found
