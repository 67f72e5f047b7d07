-- 0006_monthly_price_partitions: daily_prices stored as one partition per calendar month.
--
-- Why: a refetch of a long range changes every stored bar (each gets a new ingested_at), and
-- rewriting a million rows in place ran at 0.27x the rate of COPY into an empty window. With one
-- partition per month, a write that covers a month's stored rows builds that month as a new table
-- (COPY, then the stored rows it does not bring, then the indexes) and swaps it in, which costs
-- what COPY into an empty table costs (asx_pipeline/warehouse/postgres_backend.py). Other writes
-- (a daily run's one session) still merge row by row, into the month's partition.
--
-- What it does, in this migration's one transaction:
--   * asx_private.ensure_month_partitions(table, first, last): creates the missing partitions
--     asx_private.<table>_pYYYYMM of the months from `first` to `last`. Every writer calls it
--     before it inserts (the REST functions below, the direct Postgres backend); a row of a month
--     with no partition is refused by Postgres ("no partition of relation ... found for row").
--     Partitions live in asx_private, which PostgREST does not expose and no API role may use:
--     rows are read and written through public.daily_prices, whose row-level security applies.
--   * the stored rows move to the new partitioned public.daily_prices, with the same columns,
--     key, index, row-level security, policies and grants; the old table is dropped. This
--     rewrites the table once: it needs free space about its size while it runs, and takes
--     about as long as COPYing its rows.
--   * the daily_prices window functions, re-rendered by `python -m
--     asx_pipeline.warehouse.migrations render-functions daily_prices`, create the partitions
--     their rows need.

CREATE OR REPLACE FUNCTION asx_private.ensure_month_partitions(p_table text, p_first date, p_last date)
RETURNS integer
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = ''
AS $fn$
DECLARE
    v_month date;
    v_name text;
    v_created integer := 0;
BEGIN
    IF p_first IS NULL OR p_last IS NULL THEN
        RETURN 0;
    END IF;
    FOR v_month IN
        SELECT pg_catalog.generate_series(pg_catalog.date_trunc('month', p_first),
                                          pg_catalog.date_trunc('month', p_last),
                                          interval '1 month')::date
    LOOP
        v_name := p_table || '_p' || pg_catalog.to_char(v_month, 'YYYYMM');
        IF pg_catalog.to_regclass(pg_catalog.format('asx_private.%I', v_name)) IS NULL THEN
            EXECUTE pg_catalog.format(
                'CREATE TABLE asx_private.%I PARTITION OF public.%I FOR VALUES FROM (%L) TO (%L)',
                v_name, p_table, v_month, (v_month + interval '1 month')::date);
            v_created := v_created + 1;
        END IF;
    END LOOP;
    RETURN v_created;
END
$fn$;
REVOKE ALL ON FUNCTION asx_private.ensure_month_partitions(text, date, date) FROM PUBLIC;

-- The stored rows, under their old name until they are copied.
ALTER TABLE public.daily_prices RENAME TO daily_prices_before_0006;
ALTER TABLE public.daily_prices_before_0006 RENAME CONSTRAINT daily_prices_pkey TO daily_prices_before_0006_pkey;
ALTER INDEX public.daily_prices_symbol_idx RENAME TO daily_prices_before_0006_symbol_idx;

-- ------------------------------------------------------------------------------------------
-- daily_prices: End-of-day bars, raw (as traded) plus adj_close.

CREATE TABLE public.daily_prices (
    trade_date date NOT NULL,
    symbol text NOT NULL,
    open double precision,
    high double precision,
    low double precision,
    close double precision NOT NULL,
    adj_close double precision,
    volume bigint,
    source text NOT NULL,
    ingested_at timestamp with time zone NOT NULL,
    CONSTRAINT daily_prices_pkey PRIMARY KEY (trade_date, symbol)
) PARTITION BY RANGE (trade_date);
COMMENT ON TABLE public.daily_prices IS 'End-of-day bars, raw (as traded) plus adj_close.';
-- Reads by symbol (one company's history); the primary key, which leads with trade_date,
-- serves reads by date.
CREATE INDEX daily_prices_symbol_idx ON public.daily_prices (symbol, trade_date);

ALTER TABLE public.daily_prices ENABLE ROW LEVEL SECURITY;
DROP POLICY IF EXISTS daily_prices_read ON public.daily_prices;
CREATE POLICY daily_prices_read ON public.daily_prices FOR SELECT TO anon, authenticated USING (true);
DROP POLICY IF EXISTS daily_prices_service ON public.daily_prices;
CREATE POLICY daily_prices_service ON public.daily_prices FOR ALL TO service_role USING (true) WITH CHECK (true);
-- Supabase's default privileges grant everything on new tables to anon and authenticated; the
-- policies above already stop writes, and the grants say the same thing a second time.
REVOKE ALL ON TABLE public.daily_prices FROM PUBLIC, anon, authenticated;
GRANT SELECT ON TABLE public.daily_prices TO anon, authenticated;
GRANT SELECT, INSERT, UPDATE, DELETE ON TABLE public.daily_prices TO service_role;

SELECT asx_private.ensure_month_partitions('daily_prices', pg_catalog.min(trade_date), pg_catalog.max(trade_date))
FROM public.daily_prices_before_0006;
INSERT INTO public.daily_prices (trade_date, symbol, open, high, low, close, adj_close, volume, source, ingested_at)
SELECT trade_date, symbol, open, high, low, close, adj_close, volume, source, ingested_at
FROM public.daily_prices_before_0006
ORDER BY symbol, trade_date;
DROP TABLE public.daily_prices_before_0006;

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
    PERFORM asx_private.ensure_month_partitions('daily_prices', pg_catalog.min(r.trade_date), pg_catalog.max(r.trade_date))
    FROM pg_catalog.jsonb_populate_recordset(NULL::public.daily_prices, p_rows) AS r
    WHERE r.trade_date >= p_start AND r.trade_date < p_end;
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
    PERFORM asx_private.ensure_month_partitions('daily_prices', pg_catalog.min(r.trade_date), pg_catalog.max(r.trade_date))
    FROM asx_private.window_upload_batches AS b
    CROSS JOIN LATERAL pg_catalog.jsonb_populate_recordset(NULL::public.daily_prices, b.rows) AS r
    WHERE b.upload_id = p_upload_id AND r.trade_date >= p_start AND r.trade_date < p_end;
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
