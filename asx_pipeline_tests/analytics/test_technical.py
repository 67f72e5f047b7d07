"""The vectorised indicators equal TA-Lib itself (to 1e-9), on real and on synthetic series."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import talib

from asx_pipeline.analytics import technical as ta

TOLERANCE = 1e-9


def _chart_bars(fixtures_dir) -> pd.DataFrame:
    path = fixtures_dir / "yahoo-chart" / "chart-AAPL-2020-08-31-to-2020-11-07.json"
    result = json.loads(path.read_text())["response"]["bodyJson"]["chart"]["result"][0]
    quote = result["indicators"]["quote"][0]
    frame = pd.DataFrame({k: quote[k] for k in ("open", "high", "low", "close", "volume")})
    stamps = pd.to_datetime(result["timestamp"], unit="s", utc=True).tz_convert("America/New_York")
    return frame.assign(trade_date=stamps.date)


def _dex_bars(fixtures_dir) -> pd.DataFrame:
    path = fixtures_dir / "yfinance-history" / "DEX-AX-1d-bad-stock-split-fixed.csv"
    frame = pd.read_csv(path).iloc[::-1].reset_index(drop=True)  # the file is newest first
    return frame.rename(columns=str.lower)


def _assert_close(mine: np.ndarray, reference: np.ndarray) -> None:
    assert np.array_equal(np.isnan(mine), np.isnan(reference))
    np.testing.assert_allclose(mine, reference, rtol=TOLERANCE, atol=TOLERANCE, equal_nan=True)


def _assert_all_match(high: np.ndarray, low: np.ndarray, close: np.ndarray) -> None:
    rows = close[None, :]
    _assert_close(ta.ema(rows, 12)[0], talib.EMA(close, 12))
    _assert_close(ta.ema(rows, 26)[0], talib.EMA(close, 26))
    _assert_close(ta.rsi(rows, 14)[0], talib.RSI(close, 14))
    _assert_close(ta.atr(high[None, :], low[None, :], rows, 14)[0], talib.ATR(high, low, close, 14))
    line, signal = ta.macd(rows)
    reference_line, reference_signal, _ = talib.MACD(close, 12, 26, 9)
    _assert_close(line[0], reference_line)
    _assert_close(signal[0], reference_signal)
    bars = np.array([len(close)])
    for period in (5, 20):
        assert ta.trailing_mean(rows, bars, period)[0] == pytest.approx(
            talib.SMA(close, period)[-1], rel=TOLERANCE
        )


def test_real_aapl_series_matches_talib(fixtures_dir) -> None:
    bars = _chart_bars(fixtures_dir)
    assert len(bars) == 49
    _assert_all_match(*(bars[c].to_numpy(dtype=float) for c in ("high", "low", "close")))


def test_real_asx_series_matches_talib(fixtures_dir) -> None:
    bars = _dex_bars(fixtures_dir)
    assert len(bars) == 23  # long enough for EMA12, RSI14 and ATR14, not for MACD (34)
    high, low, close = (bars[c].to_numpy(dtype=float) for c in ("high", "low", "close"))
    _assert_all_match(high, low, close)
    assert np.isnan(ta.macd(close[None, :])[0]).all()


def test_many_rows_at_once_match_talib_row_by_row() -> None:
    rng = np.random.default_rng(7)
    close = 5 * np.exp(np.cumsum(0.02 * rng.standard_normal((40, 260)), axis=1))
    high = close * (1 + np.abs(0.01 * rng.standard_normal(close.shape)))
    low = close * (1 - np.abs(0.01 * rng.standard_normal(close.shape)))
    rsi = ta.rsi(close, 14)
    atr = ta.atr(high, low, close, 14)
    line, signal = ta.macd(close)
    for i in range(len(close)):
        _assert_close(rsi[i], talib.RSI(close[i], 14))
        _assert_close(atr[i], talib.ATR(high[i], low[i], close[i], 14))
        reference_line, reference_signal, _ = talib.MACD(close[i])
        _assert_close(line[i], reference_line)
        _assert_close(signal[i], reference_signal)


def test_a_row_gives_the_same_bits_alone_or_among_others() -> None:
    rng = np.random.default_rng(3)
    rows = 10 + np.cumsum(rng.standard_normal((300, 260)), axis=1) * 0.1
    together = ta.rsi(rows, 14)[:, -1], ta.ema(rows, 26)[:, -1], ta.macd(rows)[1][:, -1]
    for i in (0, 123, 299):
        alone = ta.rsi(rows[i : i + 1], 14)[0, -1], ta.ema(rows[i : i + 1], 26)[0, -1]
        assert alone[0] == together[0][i] and alone[1] == together[1][i]
        assert ta.macd(rows[i : i + 1])[1][0, -1] == together[2][i]


def test_too_few_bars_give_nulls_like_talib() -> None:
    close = np.linspace(1, 2, 13)
    assert np.isnan(ta.ema(close[None, :], 14)).all()
    assert np.isnan(ta.rsi(close[None, :], 14)).all()
    assert np.isnan(ta.trailing_mean(close[None, :], np.array([13]), 20)).all()


def test_rsi_is_zero_when_nothing_moves_as_in_talib() -> None:
    flat = np.full(30, 1.5)
    assert ta.rsi(flat[None, :], 14)[0, -1] == talib.RSI(flat, 14)[-1] == 0.0


def test_volatility_is_the_annualised_sample_deviation_of_log_returns() -> None:
    rng = np.random.default_rng(1)
    close = 3 * np.exp(np.cumsum(0.015 * rng.standard_normal(40)))
    log_returns = np.concatenate([[np.nan], np.diff(np.log(close))])
    value = ta.annualised_volatility(log_returns[None, :], np.array([40]), 20)[0]
    expected = np.std(log_returns[-20:], ddof=1) * np.sqrt(252)
    assert value == pytest.approx(expected, rel=1e-12)
    assert np.isnan(ta.annualised_volatility(log_returns[None, :20], np.array([20]), 20)[0])
