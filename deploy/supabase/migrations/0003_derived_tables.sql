-- 0003_derived_tables: indicators, breadth, screeners and the daily report.
--
-- Written by `python -m asx_pipeline.warehouse.migrations render daily_indicators market_breadth
-- screener_results daily_report`; see 0001_core_tables.sql for how windows are written over REST.
-- test_migrations.py checks these definitions against tables.py column for column.

-- ------------------------------------------------------------------------------------------
-- daily_indicators: Technical indicators (TA-Lib conventions) on split- and dividend-adjusted prices, in the units of the session's own raw prices; null where history is too short.

CREATE TABLE IF NOT EXISTS public.daily_indicators (
    trade_date date NOT NULL,
    symbol text NOT NULL,
    return_1d double precision,
    sma_20 double precision,
    sma_50 double precision,
    sma_200 double precision,
    ema_12 double precision,
    ema_26 double precision,
    macd double precision,
    macd_signal double precision,
    rsi_14 double precision,
    atr_14 double precision,
    volatility_20d double precision,
    high_52w double precision,
    low_52w double precision,
    avg_volume_20d double precision,
    relative_volume double precision,
    lookback_bars integer NOT NULL,
    CONSTRAINT daily_indicators_pkey PRIMARY KEY (trade_date, symbol)
);
COMMENT ON TABLE public.daily_indicators IS 'Technical indicators (TA-Lib conventions) on split- and dividend-adjusted prices, in the units of the session''s own raw prices; null where history is too short.';
-- Reads by symbol (one company's history); the primary key, which leads with trade_date,
-- serves reads by date.
CREATE INDEX IF NOT EXISTS daily_indicators_symbol_idx ON public.daily_indicators (symbol, trade_date);

ALTER TABLE public.daily_indicators ENABLE ROW LEVEL SECURITY;
DROP POLICY IF EXISTS daily_indicators_read ON public.daily_indicators;
CREATE POLICY daily_indicators_read ON public.daily_indicators FOR SELECT TO anon, authenticated USING (true);
DROP POLICY IF EXISTS daily_indicators_service ON public.daily_indicators;
CREATE POLICY daily_indicators_service ON public.daily_indicators FOR ALL TO service_role USING (true) WITH CHECK (true);
-- Supabase's default privileges grant everything on new tables to anon and authenticated; the
-- policies above already stop writes, and the grants say the same thing a second time.
REVOKE ALL ON TABLE public.daily_indicators FROM PUBLIC, anon, authenticated;
GRANT SELECT ON TABLE public.daily_indicators TO anon, authenticated;
GRANT SELECT, INSERT, UPDATE, DELETE ON TABLE public.daily_indicators TO service_role;

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
    DELETE FROM public.daily_indicators WHERE trade_date >= p_start AND trade_date < p_end;
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
    DELETE FROM public.daily_indicators WHERE trade_date >= p_start AND trade_date < p_end;
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

-- ------------------------------------------------------------------------------------------
-- market_breadth: Market breadth per session: advancers/decliners on adjusted returns, new 52-week highs/lows, percent of symbols above their 200-day SMA, median return.

CREATE TABLE IF NOT EXISTS public.market_breadth (
    trade_date date NOT NULL,
    symbols integer NOT NULL,
    advancers integer NOT NULL,
    decliners integer NOT NULL,
    unchanged integer NOT NULL,
    new_highs_52w integer NOT NULL,
    new_lows_52w integer NOT NULL,
    pct_above_sma_200 double precision,
    median_return double precision,
    CONSTRAINT market_breadth_pkey PRIMARY KEY (trade_date)
);
COMMENT ON TABLE public.market_breadth IS 'Market breadth per session: advancers/decliners on adjusted returns, new 52-week highs/lows, percent of symbols above their 200-day SMA, median return.';

ALTER TABLE public.market_breadth ENABLE ROW LEVEL SECURITY;
DROP POLICY IF EXISTS market_breadth_read ON public.market_breadth;
CREATE POLICY market_breadth_read ON public.market_breadth FOR SELECT TO anon, authenticated USING (true);
DROP POLICY IF EXISTS market_breadth_service ON public.market_breadth;
CREATE POLICY market_breadth_service ON public.market_breadth FOR ALL TO service_role USING (true) WITH CHECK (true);
-- Supabase's default privileges grant everything on new tables to anon and authenticated; the
-- policies above already stop writes, and the grants say the same thing a second time.
REVOKE ALL ON TABLE public.market_breadth FROM PUBLIC, anon, authenticated;
GRANT SELECT ON TABLE public.market_breadth TO anon, authenticated;
GRANT SELECT, INSERT, UPDATE, DELETE ON TABLE public.market_breadth TO service_role;

-- One request, one transaction: for a window that fits in one PostgREST request.
CREATE OR REPLACE FUNCTION public.replace_market_breadth_window(p_start date, p_end date, p_rows jsonb)
RETURNS integer
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = ''
AS $fn$
DECLARE
    v_written integer;
BEGIN
    PERFORM asx_private.check_window('market_breadth', p_start, p_end, p_rows);
    PERFORM pg_catalog.pg_advisory_xact_lock(pg_catalog.hashtext('asx_pipeline.replace_window:market_breadth'));
    DELETE FROM public.market_breadth WHERE trade_date >= p_start AND trade_date < p_end;
    INSERT INTO public.market_breadth (trade_date, symbols, advancers, decliners, unchanged, new_highs_52w, new_lows_52w, pct_above_sma_200, median_return)
    SELECT r.trade_date, r.symbols, r.advancers, r.decliners, r.unchanged, r.new_highs_52w, r.new_lows_52w, r.pct_above_sma_200, r.median_return
    FROM pg_catalog.jsonb_populate_recordset(NULL::public.market_breadth, p_rows) AS r
    WHERE r.trade_date >= p_start AND r.trade_date < p_end;
    GET DIAGNOSTICS v_written = ROW_COUNT;
    IF v_written <> pg_catalog.jsonb_array_length(p_rows) THEN
        RAISE EXCEPTION 'market_breadth [%, %): % row(s) fall outside the window; nothing was written', p_start, p_end, pg_catalog.jsonb_array_length(p_rows) - v_written
            USING ERRCODE = '22023';
    END IF;
    RETURN v_written;
END
$fn$;
REVOKE ALL ON FUNCTION public.replace_market_breadth_window(date, date, jsonb) FROM PUBLIC, anon, authenticated;
GRANT EXECUTE ON FUNCTION public.replace_market_breadth_window(date, date, jsonb) TO service_role;

-- A window staged in batches (stage_window_batch) becomes visible here, all at once.
CREATE OR REPLACE FUNCTION public.commit_market_breadth_window(p_upload_id uuid, p_start date, p_end date, p_batches integer)
RETURNS integer
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = ''
AS $fn$
DECLARE
    v_written integer;
    v_staged integer;
BEGIN
    v_staged := asx_private.claim_upload(p_upload_id, 'market_breadth', p_start, p_end, p_batches);
    IF v_staged IS NULL THEN
        -- Already committed: this is a retry whose first answer was lost. Report, change nothing.
        RETURN (SELECT u.row_count FROM asx_private.window_uploads AS u
                WHERE u.upload_id = p_upload_id);
    END IF;
    PERFORM pg_catalog.pg_advisory_xact_lock(pg_catalog.hashtext('asx_pipeline.replace_window:market_breadth'));
    DELETE FROM public.market_breadth WHERE trade_date >= p_start AND trade_date < p_end;
    INSERT INTO public.market_breadth (trade_date, symbols, advancers, decliners, unchanged, new_highs_52w, new_lows_52w, pct_above_sma_200, median_return)
    SELECT r.trade_date, r.symbols, r.advancers, r.decliners, r.unchanged, r.new_highs_52w, r.new_lows_52w, r.pct_above_sma_200, r.median_return
    FROM asx_private.window_upload_batches AS b
    CROSS JOIN LATERAL pg_catalog.jsonb_populate_recordset(NULL::public.market_breadth, b.rows) AS r
    WHERE b.upload_id = p_upload_id AND r.trade_date >= p_start AND r.trade_date < p_end;
    GET DIAGNOSTICS v_written = ROW_COUNT;
    IF v_written <> v_staged THEN
        RAISE EXCEPTION 'market_breadth [%, %): % row(s) fall outside the window; nothing was written', p_start, p_end, v_staged - v_written
            USING ERRCODE = '22023';
    END IF;
    PERFORM asx_private.finish_upload(p_upload_id, v_written);
    RETURN v_written;
END
$fn$;
REVOKE ALL ON FUNCTION public.commit_market_breadth_window(uuid, date, date, integer) FROM PUBLIC, anon, authenticated;
GRANT EXECUTE ON FUNCTION public.commit_market_breadth_window(uuid, date, date, integer) TO service_role;

-- ------------------------------------------------------------------------------------------
-- screener_results: Each screener's hits per session, ranked; matched_values is a JSON object of the columns its filters and ranking used.

CREATE TABLE IF NOT EXISTS public.screener_results (
    trade_date date NOT NULL,
    screener text NOT NULL,
    symbol text NOT NULL,
    rank integer NOT NULL,
    score double precision,
    close double precision,
    matched_values text NOT NULL,
    CONSTRAINT screener_results_pkey PRIMARY KEY (trade_date, screener, symbol)
);
COMMENT ON TABLE public.screener_results IS 'Each screener''s hits per session, ranked; matched_values is a JSON object of the columns its filters and ranking used.';
-- Reads by symbol (one company's history); the primary key, which leads with trade_date,
-- serves reads by date.
CREATE INDEX IF NOT EXISTS screener_results_symbol_idx ON public.screener_results (symbol, trade_date);

ALTER TABLE public.screener_results ENABLE ROW LEVEL SECURITY;
DROP POLICY IF EXISTS screener_results_read ON public.screener_results;
CREATE POLICY screener_results_read ON public.screener_results FOR SELECT TO anon, authenticated USING (true);
DROP POLICY IF EXISTS screener_results_service ON public.screener_results;
CREATE POLICY screener_results_service ON public.screener_results FOR ALL TO service_role USING (true) WITH CHECK (true);
-- Supabase's default privileges grant everything on new tables to anon and authenticated; the
-- policies above already stop writes, and the grants say the same thing a second time.
REVOKE ALL ON TABLE public.screener_results FROM PUBLIC, anon, authenticated;
GRANT SELECT ON TABLE public.screener_results TO anon, authenticated;
GRANT SELECT, INSERT, UPDATE, DELETE ON TABLE public.screener_results TO service_role;

-- One request, one transaction: for a window that fits in one PostgREST request.
CREATE OR REPLACE FUNCTION public.replace_screener_results_window(p_start date, p_end date, p_rows jsonb)
RETURNS integer
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = ''
AS $fn$
DECLARE
    v_written integer;
BEGIN
    PERFORM asx_private.check_window('screener_results', p_start, p_end, p_rows);
    PERFORM pg_catalog.pg_advisory_xact_lock(pg_catalog.hashtext('asx_pipeline.replace_window:screener_results'));
    DELETE FROM public.screener_results WHERE trade_date >= p_start AND trade_date < p_end;
    INSERT INTO public.screener_results (trade_date, screener, symbol, rank, score, close, matched_values)
    SELECT r.trade_date, r.screener, r.symbol, r.rank, r.score, r.close, r.matched_values
    FROM pg_catalog.jsonb_populate_recordset(NULL::public.screener_results, p_rows) AS r
    WHERE r.trade_date >= p_start AND r.trade_date < p_end;
    GET DIAGNOSTICS v_written = ROW_COUNT;
    IF v_written <> pg_catalog.jsonb_array_length(p_rows) THEN
        RAISE EXCEPTION 'screener_results [%, %): % row(s) fall outside the window; nothing was written', p_start, p_end, pg_catalog.jsonb_array_length(p_rows) - v_written
            USING ERRCODE = '22023';
    END IF;
    RETURN v_written;
END
$fn$;
REVOKE ALL ON FUNCTION public.replace_screener_results_window(date, date, jsonb) FROM PUBLIC, anon, authenticated;
GRANT EXECUTE ON FUNCTION public.replace_screener_results_window(date, date, jsonb) TO service_role;

-- A window staged in batches (stage_window_batch) becomes visible here, all at once.
CREATE OR REPLACE FUNCTION public.commit_screener_results_window(p_upload_id uuid, p_start date, p_end date, p_batches integer)
RETURNS integer
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = ''
AS $fn$
DECLARE
    v_written integer;
    v_staged integer;
BEGIN
    v_staged := asx_private.claim_upload(p_upload_id, 'screener_results', p_start, p_end, p_batches);
    IF v_staged IS NULL THEN
        -- Already committed: this is a retry whose first answer was lost. Report, change nothing.
        RETURN (SELECT u.row_count FROM asx_private.window_uploads AS u
                WHERE u.upload_id = p_upload_id);
    END IF;
    PERFORM pg_catalog.pg_advisory_xact_lock(pg_catalog.hashtext('asx_pipeline.replace_window:screener_results'));
    DELETE FROM public.screener_results WHERE trade_date >= p_start AND trade_date < p_end;
    INSERT INTO public.screener_results (trade_date, screener, symbol, rank, score, close, matched_values)
    SELECT r.trade_date, r.screener, r.symbol, r.rank, r.score, r.close, r.matched_values
    FROM asx_private.window_upload_batches AS b
    CROSS JOIN LATERAL pg_catalog.jsonb_populate_recordset(NULL::public.screener_results, b.rows) AS r
    WHERE b.upload_id = p_upload_id AND r.trade_date >= p_start AND r.trade_date < p_end;
    GET DIAGNOSTICS v_written = ROW_COUNT;
    IF v_written <> v_staged THEN
        RAISE EXCEPTION 'screener_results [%, %): % row(s) fall outside the window; nothing was written', p_start, p_end, v_staged - v_written
            USING ERRCODE = '22023';
    END IF;
    PERFORM asx_private.finish_upload(p_upload_id, v_written);
    RETURN v_written;
END
$fn$;
REVOKE ALL ON FUNCTION public.commit_screener_results_window(uuid, date, date, integer) FROM PUBLIC, anon, authenticated;
GRANT EXECUTE ON FUNCTION public.commit_screener_results_window(uuid, date, date, integer) TO service_role;

-- ------------------------------------------------------------------------------------------
-- daily_report: The daily market report: Markdown text and the path of its HTML rendering.

CREATE TABLE IF NOT EXISTS public.daily_report (
    trade_date date NOT NULL,
    title text NOT NULL,
    markdown text NOT NULL,
    html_path text NOT NULL,
    CONSTRAINT daily_report_pkey PRIMARY KEY (trade_date)
);
COMMENT ON TABLE public.daily_report IS 'The daily market report: Markdown text and the path of its HTML rendering.';

ALTER TABLE public.daily_report ENABLE ROW LEVEL SECURITY;
DROP POLICY IF EXISTS daily_report_read ON public.daily_report;
CREATE POLICY daily_report_read ON public.daily_report FOR SELECT TO anon, authenticated USING (true);
DROP POLICY IF EXISTS daily_report_service ON public.daily_report;
CREATE POLICY daily_report_service ON public.daily_report FOR ALL TO service_role USING (true) WITH CHECK (true);
-- Supabase's default privileges grant everything on new tables to anon and authenticated; the
-- policies above already stop writes, and the grants say the same thing a second time.
REVOKE ALL ON TABLE public.daily_report FROM PUBLIC, anon, authenticated;
GRANT SELECT ON TABLE public.daily_report TO anon, authenticated;
GRANT SELECT, INSERT, UPDATE, DELETE ON TABLE public.daily_report TO service_role;

-- One request, one transaction: for a window that fits in one PostgREST request.
CREATE OR REPLACE FUNCTION public.replace_daily_report_window(p_start date, p_end date, p_rows jsonb)
RETURNS integer
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = ''
AS $fn$
DECLARE
    v_written integer;
BEGIN
    PERFORM asx_private.check_window('daily_report', p_start, p_end, p_rows);
    PERFORM pg_catalog.pg_advisory_xact_lock(pg_catalog.hashtext('asx_pipeline.replace_window:daily_report'));
    DELETE FROM public.daily_report WHERE trade_date >= p_start AND trade_date < p_end;
    INSERT INTO public.daily_report (trade_date, title, markdown, html_path)
    SELECT r.trade_date, r.title, r.markdown, r.html_path
    FROM pg_catalog.jsonb_populate_recordset(NULL::public.daily_report, p_rows) AS r
    WHERE r.trade_date >= p_start AND r.trade_date < p_end;
    GET DIAGNOSTICS v_written = ROW_COUNT;
    IF v_written <> pg_catalog.jsonb_array_length(p_rows) THEN
        RAISE EXCEPTION 'daily_report [%, %): % row(s) fall outside the window; nothing was written', p_start, p_end, pg_catalog.jsonb_array_length(p_rows) - v_written
            USING ERRCODE = '22023';
    END IF;
    RETURN v_written;
END
$fn$;
REVOKE ALL ON FUNCTION public.replace_daily_report_window(date, date, jsonb) FROM PUBLIC, anon, authenticated;
GRANT EXECUTE ON FUNCTION public.replace_daily_report_window(date, date, jsonb) TO service_role;

-- A window staged in batches (stage_window_batch) becomes visible here, all at once.
CREATE OR REPLACE FUNCTION public.commit_daily_report_window(p_upload_id uuid, p_start date, p_end date, p_batches integer)
RETURNS integer
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = ''
AS $fn$
DECLARE
    v_written integer;
    v_staged integer;
BEGIN
    v_staged := asx_private.claim_upload(p_upload_id, 'daily_report', p_start, p_end, p_batches);
    IF v_staged IS NULL THEN
        -- Already committed: this is a retry whose first answer was lost. Report, change nothing.
        RETURN (SELECT u.row_count FROM asx_private.window_uploads AS u
                WHERE u.upload_id = p_upload_id);
    END IF;
    PERFORM pg_catalog.pg_advisory_xact_lock(pg_catalog.hashtext('asx_pipeline.replace_window:daily_report'));
    DELETE FROM public.daily_report WHERE trade_date >= p_start AND trade_date < p_end;
    INSERT INTO public.daily_report (trade_date, title, markdown, html_path)
    SELECT r.trade_date, r.title, r.markdown, r.html_path
    FROM asx_private.window_upload_batches AS b
    CROSS JOIN LATERAL pg_catalog.jsonb_populate_recordset(NULL::public.daily_report, b.rows) AS r
    WHERE b.upload_id = p_upload_id AND r.trade_date >= p_start AND r.trade_date < p_end;
    GET DIAGNOSTICS v_written = ROW_COUNT;
    IF v_written <> v_staged THEN
        RAISE EXCEPTION 'daily_report [%, %): % row(s) fall outside the window; nothing was written', p_start, p_end, v_staged - v_written
            USING ERRCODE = '22023';
    END IF;
    PERFORM asx_private.finish_upload(p_upload_id, v_written);
    RETURN v_written;
END
$fn$;
REVOKE ALL ON FUNCTION public.commit_daily_report_window(uuid, date, date, integer) FROM PUBLIC, anon, authenticated;
GRANT EXECUTE ON FUNCTION public.commit_daily_report_window(uuid, date, date, integer) TO service_role;

