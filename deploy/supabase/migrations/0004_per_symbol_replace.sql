-- 0004_per_symbol_replace: nothing stored is lost to a partial failure.
--
-- Until now these functions deleted the whole window before inserting the incoming rows, so a
-- rerun that could not fetch a ticker deleted that ticker's stored rows. Now, as in tables.py
-- (TableSpec.replace_scope) and on the direct Postgres and DuckDB backends:
--   * daily_prices, daily_indicators: a stored row is replaced only by an incoming row of the
--     same (trade_date, symbol); a failed ticker, a bar refused as junk, or a session the source
--     did not return this time keeps its stored row;
--   * corporate_actions: a symbol among the incoming rows has its actions in the window replaced
--     by the incoming ones; a symbol absent from them keeps its stored actions.
-- Only the two window functions of each table change (CREATE OR REPLACE; tables, data and RLS are
-- untouched). Written by `python -m asx_pipeline.warehouse.migrations render-functions
-- daily_prices corporate_actions daily_indicators`; test_migrations.py checks that the latest
-- definition of every window function equals what the code renders.

-- ------------------------------------------------------------------------------------------
-- daily_prices: End-of-day bars, raw (as traded) plus adj_close.

-- One request, one transaction: for a window that fits in one PostgREST request.
CREATE OR REPLACE FUNCTION public.replace_daily_prices_window(p_start date, p_end date, p_rows jsonb)
RETURNS integer
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = ''
AS $fn$
DECLARE
    v_written integer;
BEGIN
    PERFORM asx_private.check_window('daily_prices', p_start, p_end, p_rows);
    PERFORM pg_catalog.pg_advisory_xact_lock(pg_catalog.hashtext('asx_pipeline.replace_window:daily_prices'));
    DELETE FROM public.daily_prices WHERE trade_date >= p_start AND trade_date < p_end
    AND (trade_date, symbol) IN (SELECT DISTINCT r.trade_date, r.symbol
        FROM pg_catalog.jsonb_populate_recordset(NULL::public.daily_prices, p_rows) AS r);
    INSERT INTO public.daily_prices (trade_date, symbol, open, high, low, close, adj_close, volume, source, ingested_at)
    SELECT r.trade_date, r.symbol, r.open, r.high, r.low, r.close, r.adj_close, r.volume, r.source, r.ingested_at
    FROM pg_catalog.jsonb_populate_recordset(NULL::public.daily_prices, p_rows) AS r
    WHERE r.trade_date >= p_start AND r.trade_date < p_end;
    GET DIAGNOSTICS v_written = ROW_COUNT;
    IF v_written <> pg_catalog.jsonb_array_length(p_rows) THEN
        RAISE EXCEPTION 'daily_prices [%, %): % row(s) fall outside the window; nothing was written', p_start, p_end, pg_catalog.jsonb_array_length(p_rows) - v_written
            USING ERRCODE = '22023';
    END IF;
    RETURN v_written;
END
$fn$;
REVOKE ALL ON FUNCTION public.replace_daily_prices_window(date, date, jsonb) FROM PUBLIC, anon, authenticated;
GRANT EXECUTE ON FUNCTION public.replace_daily_prices_window(date, date, jsonb) TO service_role;

-- A window staged in batches (stage_window_batch) becomes visible here, all at once.
CREATE OR REPLACE FUNCTION public.commit_daily_prices_window(p_upload_id uuid, p_start date, p_end date, p_batches integer)
RETURNS integer
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = ''
AS $fn$
DECLARE
    v_written integer;
    v_staged integer;
BEGIN
    v_staged := asx_private.claim_upload(p_upload_id, 'daily_prices', p_start, p_end, p_batches);
    IF v_staged IS NULL THEN
        -- Already committed: this is a retry whose first answer was lost. Report, change nothing.
        RETURN (SELECT u.row_count FROM asx_private.window_uploads AS u
                WHERE u.upload_id = p_upload_id);
    END IF;
    PERFORM pg_catalog.pg_advisory_xact_lock(pg_catalog.hashtext('asx_pipeline.replace_window:daily_prices'));
    DELETE FROM public.daily_prices WHERE trade_date >= p_start AND trade_date < p_end
    AND (trade_date, symbol) IN (SELECT DISTINCT r.trade_date, r.symbol
        FROM asx_private.window_upload_batches AS b
    CROSS JOIN LATERAL pg_catalog.jsonb_populate_recordset(NULL::public.daily_prices, b.rows) AS r
        WHERE b.upload_id = p_upload_id);
    INSERT INTO public.daily_prices (trade_date, symbol, open, high, low, close, adj_close, volume, source, ingested_at)
    SELECT r.trade_date, r.symbol, r.open, r.high, r.low, r.close, r.adj_close, r.volume, r.source, r.ingested_at
    FROM asx_private.window_upload_batches AS b
    CROSS JOIN LATERAL pg_catalog.jsonb_populate_recordset(NULL::public.daily_prices, b.rows) AS r
    WHERE b.upload_id = p_upload_id AND r.trade_date >= p_start AND r.trade_date < p_end;
    GET DIAGNOSTICS v_written = ROW_COUNT;
    IF v_written <> v_staged THEN
        RAISE EXCEPTION 'daily_prices [%, %): % row(s) fall outside the window; nothing was written', p_start, p_end, v_staged - v_written
            USING ERRCODE = '22023';
    END IF;
    PERFORM asx_private.finish_upload(p_upload_id, v_written);
    RETURN v_written;
END
$fn$;
REVOKE ALL ON FUNCTION public.commit_daily_prices_window(uuid, date, date, integer) FROM PUBLIC, anon, authenticated;
GRANT EXECUTE ON FUNCTION public.commit_daily_prices_window(uuid, date, date, integer) TO service_role;

-- ------------------------------------------------------------------------------------------
-- corporate_actions: Dividends (cash per share) and splits (ratio new/old) by ex-date.

-- One request, one transaction: for a window that fits in one PostgREST request.
CREATE OR REPLACE FUNCTION public.replace_corporate_actions_window(p_start date, p_end date, p_rows jsonb)
RETURNS integer
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = ''
AS $fn$
DECLARE
    v_written integer;
BEGIN
    PERFORM asx_private.check_window('corporate_actions', p_start, p_end, p_rows);
    PERFORM pg_catalog.pg_advisory_xact_lock(pg_catalog.hashtext('asx_pipeline.replace_window:corporate_actions'));
    DELETE FROM public.corporate_actions WHERE ex_date >= p_start AND ex_date < p_end
    AND (symbol) IN (SELECT DISTINCT r.symbol
        FROM pg_catalog.jsonb_populate_recordset(NULL::public.corporate_actions, p_rows) AS r);
    INSERT INTO public.corporate_actions (ex_date, symbol, action, value, source)
    SELECT r.ex_date, r.symbol, r.action, r.value, r.source
    FROM pg_catalog.jsonb_populate_recordset(NULL::public.corporate_actions, p_rows) AS r
    WHERE r.ex_date >= p_start AND r.ex_date < p_end;
    GET DIAGNOSTICS v_written = ROW_COUNT;
    IF v_written <> pg_catalog.jsonb_array_length(p_rows) THEN
        RAISE EXCEPTION 'corporate_actions [%, %): % row(s) fall outside the window; nothing was written', p_start, p_end, pg_catalog.jsonb_array_length(p_rows) - v_written
            USING ERRCODE = '22023';
    END IF;
    RETURN v_written;
END
$fn$;
REVOKE ALL ON FUNCTION public.replace_corporate_actions_window(date, date, jsonb) FROM PUBLIC, anon, authenticated;
GRANT EXECUTE ON FUNCTION public.replace_corporate_actions_window(date, date, jsonb) TO service_role;

-- A window staged in batches (stage_window_batch) becomes visible here, all at once.
CREATE OR REPLACE FUNCTION public.commit_corporate_actions_window(p_upload_id uuid, p_start date, p_end date, p_batches integer)
RETURNS integer
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = ''
AS $fn$
DECLARE
    v_written integer;
    v_staged integer;
BEGIN
    v_staged := asx_private.claim_upload(p_upload_id, 'corporate_actions', p_start, p_end, p_batches);
    IF v_staged IS NULL THEN
        -- Already committed: this is a retry whose first answer was lost. Report, change nothing.
        RETURN (SELECT u.row_count FROM asx_private.window_uploads AS u
                WHERE u.upload_id = p_upload_id);
    END IF;
    PERFORM pg_catalog.pg_advisory_xact_lock(pg_catalog.hashtext('asx_pipeline.replace_window:corporate_actions'));
    DELETE FROM public.corporate_actions WHERE ex_date >= p_start AND ex_date < p_end
    AND (symbol) IN (SELECT DISTINCT r.symbol
        FROM asx_private.window_upload_batches AS b
    CROSS JOIN LATERAL pg_catalog.jsonb_populate_recordset(NULL::public.corporate_actions, b.rows) AS r
        WHERE b.upload_id = p_upload_id);
    INSERT INTO public.corporate_actions (ex_date, symbol, action, value, source)
    SELECT r.ex_date, r.symbol, r.action, r.value, r.source
    FROM asx_private.window_upload_batches AS b
    CROSS JOIN LATERAL pg_catalog.jsonb_populate_recordset(NULL::public.corporate_actions, b.rows) AS r
    WHERE b.upload_id = p_upload_id AND r.ex_date >= p_start AND r.ex_date < p_end;
    GET DIAGNOSTICS v_written = ROW_COUNT;
    IF v_written <> v_staged THEN
        RAISE EXCEPTION 'corporate_actions [%, %): % row(s) fall outside the window; nothing was written', p_start, p_end, v_staged - v_written
            USING ERRCODE = '22023';
    END IF;
    PERFORM asx_private.finish_upload(p_upload_id, v_written);
    RETURN v_written;
END
$fn$;
REVOKE ALL ON FUNCTION public.commit_corporate_actions_window(uuid, date, date, integer) FROM PUBLIC, anon, authenticated;
GRANT EXECUTE ON FUNCTION public.commit_corporate_actions_window(uuid, date, date, integer) TO service_role;

-- ------------------------------------------------------------------------------------------
-- daily_indicators: Technical indicators (TA-Lib conventions) on split- and dividend-adjusted prices, in the units of the session's own raw prices; null where history is too short.

-- One request, one transaction: for a window that fits in one PostgREST request.
CREATE OR REPLACE FUNCTION public.replace_daily_indicators_window(p_start date, p_end date, p_rows jsonb)
RETURNS integer
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = ''
AS $fn$
DECLARE
    v_written integer;
BEGIN
    PERFORM asx_private.check_window('daily_indicators', p_start, p_end, p_rows);
    PERFORM pg_catalog.pg_advisory_xact_lock(pg_catalog.hashtext('asx_pipeline.replace_window:daily_indicators'));
    DELETE FROM public.daily_indicators WHERE trade_date >= p_start AND trade_date < p_end
    AND (trade_date, symbol) IN (SELECT DISTINCT r.trade_date, r.symbol
        FROM pg_catalog.jsonb_populate_recordset(NULL::public.daily_indicators, p_rows) AS r);
    INSERT INTO public.daily_indicators (trade_date, symbol, return_1d, sma_20, sma_50, sma_200, ema_12, ema_26, macd, macd_signal, rsi_14, atr_14, volatility_20d, high_52w, low_52w, avg_volume_20d, relative_volume, lookback_bars)
    SELECT r.trade_date, r.symbol, r.return_1d, r.sma_20, r.sma_50, r.sma_200, r.ema_12, r.ema_26, r.macd, r.macd_signal, r.rsi_14, r.atr_14, r.volatility_20d, r.high_52w, r.low_52w, r.avg_volume_20d, r.relative_volume, r.lookback_bars
    FROM pg_catalog.jsonb_populate_recordset(NULL::public.daily_indicators, p_rows) AS r
    WHERE r.trade_date >= p_start AND r.trade_date < p_end;
    GET DIAGNOSTICS v_written = ROW_COUNT;
    IF v_written <> pg_catalog.jsonb_array_length(p_rows) THEN
        RAISE EXCEPTION 'daily_indicators [%, %): % row(s) fall outside the window; nothing was written', p_start, p_end, pg_catalog.jsonb_array_length(p_rows) - v_written
            USING ERRCODE = '22023';
    END IF;
    RETURN v_written;
END
$fn$;
REVOKE ALL ON FUNCTION public.replace_daily_indicators_window(date, date, jsonb) FROM PUBLIC, anon, authenticated;
GRANT EXECUTE ON FUNCTION public.replace_daily_indicators_window(date, date, jsonb) TO service_role;

-- A window staged in batches (stage_window_batch) becomes visible here, all at once.
CREATE OR REPLACE FUNCTION public.commit_daily_indicators_window(p_upload_id uuid, p_start date, p_end date, p_batches integer)
RETURNS integer
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = ''
AS $fn$
DECLARE
    v_written integer;
    v_staged integer;
BEGIN
    v_staged := asx_private.claim_upload(p_upload_id, 'daily_indicators', p_start, p_end, p_batches);
    IF v_staged IS NULL THEN
        -- Already committed: this is a retry whose first answer was lost. Report, change nothing.
        RETURN (SELECT u.row_count FROM asx_private.window_uploads AS u
                WHERE u.upload_id = p_upload_id);
    END IF;
    PERFORM pg_catalog.pg_advisory_xact_lock(pg_catalog.hashtext('asx_pipeline.replace_window:daily_indicators'));
    DELETE FROM public.daily_indicators WHERE trade_date >= p_start AND trade_date < p_end
    AND (trade_date, symbol) IN (SELECT DISTINCT r.trade_date, r.symbol
        FROM asx_private.window_upload_batches AS b
    CROSS JOIN LATERAL pg_catalog.jsonb_populate_recordset(NULL::public.daily_indicators, b.rows) AS r
        WHERE b.upload_id = p_upload_id);
    INSERT INTO public.daily_indicators (trade_date, symbol, return_1d, sma_20, sma_50, sma_200, ema_12, ema_26, macd, macd_signal, rsi_14, atr_14, volatility_20d, high_52w, low_52w, avg_volume_20d, relative_volume, lookback_bars)
    SELECT r.trade_date, r.symbol, r.return_1d, r.sma_20, r.sma_50, r.sma_200, r.ema_12, r.ema_26, r.macd, r.macd_signal, r.rsi_14, r.atr_14, r.volatility_20d, r.high_52w, r.low_52w, r.avg_volume_20d, r.relative_volume, r.lookback_bars
    FROM asx_private.window_upload_batches AS b
    CROSS JOIN LATERAL pg_catalog.jsonb_populate_recordset(NULL::public.daily_indicators, b.rows) AS r
    WHERE b.upload_id = p_upload_id AND r.trade_date >= p_start AND r.trade_date < p_end;
    GET DIAGNOSTICS v_written = ROW_COUNT;
    IF v_written <> v_staged THEN
        RAISE EXCEPTION 'daily_indicators [%, %): % row(s) fall outside the window; nothing was written', p_start, p_end, v_staged - v_written
            USING ERRCODE = '22023';
    END IF;
    PERFORM asx_private.finish_upload(p_upload_id, v_written);
    RETURN v_written;
END
$fn$;
REVOKE ALL ON FUNCTION public.commit_daily_indicators_window(uuid, date, date, integer) FROM PUBLIC, anon, authenticated;
GRANT EXECUTE ON FUNCTION public.commit_daily_indicators_window(uuid, date, date, integer) TO service_role;
