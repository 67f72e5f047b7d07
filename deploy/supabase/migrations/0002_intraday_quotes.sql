-- 0002_intraday_quotes: 15-minute snapshots in market hours.
--
-- A snapshot replaces only its own rows (TableSpec.replace_scope = snapshot_at), so the window
-- functions below delete just the snapshot_at values that the incoming rows bring; the day's
-- earlier snapshots stay. Written by `python -m asx_pipeline.warehouse.migrations render
-- intraday_quotes`; see 0001_core_tables.sql for how windows are written over REST.

-- ------------------------------------------------------------------------------------------
-- intraday_quotes: 15-minute snapshots in market hours: last price, % change on the previous close, and volume so far.

CREATE TABLE IF NOT EXISTS public.intraday_quotes (
    trade_date date NOT NULL,
    snapshot_at timestamp with time zone NOT NULL,
    symbol text NOT NULL,
    last double precision NOT NULL,
    change_pct double precision,
    volume bigint,
    source text NOT NULL,
    CONSTRAINT intraday_quotes_pkey PRIMARY KEY (trade_date, snapshot_at, symbol)
);
COMMENT ON TABLE public.intraday_quotes IS '15-minute snapshots in market hours: last price, % change on the previous close, and volume so far.';
-- Reads by symbol (one company's history); the primary key, which leads with trade_date,
-- serves reads by date.
CREATE INDEX IF NOT EXISTS intraday_quotes_symbol_idx ON public.intraday_quotes (symbol, trade_date);

ALTER TABLE public.intraday_quotes ENABLE ROW LEVEL SECURITY;
DROP POLICY IF EXISTS intraday_quotes_read ON public.intraday_quotes;
CREATE POLICY intraday_quotes_read ON public.intraday_quotes FOR SELECT TO anon, authenticated USING (true);
DROP POLICY IF EXISTS intraday_quotes_service ON public.intraday_quotes;
CREATE POLICY intraday_quotes_service ON public.intraday_quotes FOR ALL TO service_role USING (true) WITH CHECK (true);
-- Supabase's default privileges grant everything on new tables to anon and authenticated; the
-- policies above already stop writes, and the grants say the same thing a second time.
REVOKE ALL ON TABLE public.intraday_quotes FROM PUBLIC, anon, authenticated;
GRANT SELECT ON TABLE public.intraday_quotes TO anon, authenticated;
GRANT SELECT, INSERT, UPDATE, DELETE ON TABLE public.intraday_quotes TO service_role;

-- One request, one transaction: for a window that fits in one PostgREST request.
CREATE OR REPLACE FUNCTION public.replace_intraday_quotes_window(p_start date, p_end date, p_rows jsonb)
RETURNS integer
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = ''
AS $fn$
DECLARE
    v_written integer;
BEGIN
    PERFORM asx_private.check_window('intraday_quotes', p_start, p_end, p_rows);
    PERFORM pg_catalog.pg_advisory_xact_lock(pg_catalog.hashtext('asx_pipeline.replace_window:intraday_quotes'));
    DELETE FROM public.intraday_quotes WHERE trade_date >= p_start AND trade_date < p_end
    AND (snapshot_at) IN (SELECT DISTINCT r.snapshot_at
        FROM pg_catalog.jsonb_populate_recordset(NULL::public.intraday_quotes, p_rows) AS r);
    INSERT INTO public.intraday_quotes (trade_date, snapshot_at, symbol, last, change_pct, volume, source)
    SELECT r.trade_date, r.snapshot_at, r.symbol, r.last, r.change_pct, r.volume, r.source
    FROM pg_catalog.jsonb_populate_recordset(NULL::public.intraday_quotes, p_rows) AS r
    WHERE r.trade_date >= p_start AND r.trade_date < p_end;
    GET DIAGNOSTICS v_written = ROW_COUNT;
    IF v_written <> pg_catalog.jsonb_array_length(p_rows) THEN
        RAISE EXCEPTION 'intraday_quotes [%, %): % row(s) fall outside the window; nothing was written', p_start, p_end, pg_catalog.jsonb_array_length(p_rows) - v_written
            USING ERRCODE = '22023';
    END IF;
    RETURN v_written;
END
$fn$;
REVOKE ALL ON FUNCTION public.replace_intraday_quotes_window(date, date, jsonb) FROM PUBLIC, anon, authenticated;
GRANT EXECUTE ON FUNCTION public.replace_intraday_quotes_window(date, date, jsonb) TO service_role;

-- A window staged in batches (stage_window_batch) becomes visible here, all at once.
CREATE OR REPLACE FUNCTION public.commit_intraday_quotes_window(p_upload_id uuid, p_start date, p_end date, p_batches integer)
RETURNS integer
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = ''
AS $fn$
DECLARE
    v_written integer;
    v_staged integer;
BEGIN
    v_staged := asx_private.claim_upload(p_upload_id, 'intraday_quotes', p_start, p_end, p_batches);
    IF v_staged IS NULL THEN
        -- Already committed: this is a retry whose first answer was lost. Report, change nothing.
        RETURN (SELECT u.row_count FROM asx_private.window_uploads AS u
                WHERE u.upload_id = p_upload_id);
    END IF;
    PERFORM pg_catalog.pg_advisory_xact_lock(pg_catalog.hashtext('asx_pipeline.replace_window:intraday_quotes'));
    DELETE FROM public.intraday_quotes WHERE trade_date >= p_start AND trade_date < p_end
    AND (snapshot_at) IN (SELECT DISTINCT r.snapshot_at
        FROM asx_private.window_upload_batches AS b
    CROSS JOIN LATERAL pg_catalog.jsonb_populate_recordset(NULL::public.intraday_quotes, b.rows) AS r
        WHERE b.upload_id = p_upload_id);
    INSERT INTO public.intraday_quotes (trade_date, snapshot_at, symbol, last, change_pct, volume, source)
    SELECT r.trade_date, r.snapshot_at, r.symbol, r.last, r.change_pct, r.volume, r.source
    FROM asx_private.window_upload_batches AS b
    CROSS JOIN LATERAL pg_catalog.jsonb_populate_recordset(NULL::public.intraday_quotes, b.rows) AS r
    WHERE b.upload_id = p_upload_id AND r.trade_date >= p_start AND r.trade_date < p_end;
    GET DIAGNOSTICS v_written = ROW_COUNT;
    IF v_written <> v_staged THEN
        RAISE EXCEPTION 'intraday_quotes [%, %): % row(s) fall outside the window; nothing was written', p_start, p_end, v_staged - v_written
            USING ERRCODE = '22023';
    END IF;
    PERFORM asx_private.finish_upload(p_upload_id, v_written);
    RETURN v_written;
END
$fn$;
REVOKE ALL ON FUNCTION public.commit_intraday_quotes_window(uuid, date, date, integer) FROM PUBLIC, anon, authenticated;
GRANT EXECUTE ON FUNCTION public.commit_intraday_quotes_window(uuid, date, date, integer) TO service_role;

