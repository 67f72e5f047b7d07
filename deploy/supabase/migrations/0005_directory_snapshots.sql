-- 0005_directory_snapshots: every ASX directory kept, and asx_symbols says which one it used.
--
-- The ASX publishes only today's company directory, so a stored snapshot is the only record of an
-- old one: public.asx_directory_snapshots is append-only (TableSpec.append_only). It has no window
-- functions; over REST it is written by append_asx_directory_snapshots(p_rows), which adds only
-- the captured_on values not stored yet and skips a stored one whole, and its stored partitions
-- are listed by asx_directory_snapshots_partition_values(). Written by `python -m
-- asx_pipeline.warehouse.migrations render asx_directory_snapshots`.
--
-- asx_symbols gains two nullable columns (the snapshot a row was chosen from, and whether it was
-- captured after the session); rows stored before hold null there. Its window functions list the
-- columns, so they are re-rendered (`render-functions asx_symbols`). test_migrations.py checks
-- that the latest definition of every function equals what the code renders.

-- ------------------------------------------------------------------------------------------
-- asx_directory_snapshots: Every ASX company directory fetched or imported, once each, as published on its capture date; origin says where it came from. Append-only.

CREATE TABLE IF NOT EXISTS public.asx_directory_snapshots (
    captured_on date NOT NULL,
    symbol text NOT NULL,
    company_name text,
    gics_industry_group text,
    listing_date date,
    market_cap double precision,
    status text NOT NULL,
    origin text NOT NULL,
    CONSTRAINT asx_directory_snapshots_pkey PRIMARY KEY (captured_on, symbol)
);
COMMENT ON TABLE public.asx_directory_snapshots IS 'Every ASX company directory fetched or imported, once each, as published on its capture date; origin says where it came from. Append-only.';
-- Reads by symbol (one company's history); the primary key, which leads with captured_on,
-- serves reads by date.
CREATE INDEX IF NOT EXISTS asx_directory_snapshots_symbol_idx ON public.asx_directory_snapshots (symbol, captured_on);

ALTER TABLE public.asx_directory_snapshots ENABLE ROW LEVEL SECURITY;
DROP POLICY IF EXISTS asx_directory_snapshots_read ON public.asx_directory_snapshots;
CREATE POLICY asx_directory_snapshots_read ON public.asx_directory_snapshots FOR SELECT TO anon, authenticated USING (true);
DROP POLICY IF EXISTS asx_directory_snapshots_service ON public.asx_directory_snapshots;
CREATE POLICY asx_directory_snapshots_service ON public.asx_directory_snapshots FOR ALL TO service_role USING (true) WITH CHECK (true);
-- Supabase's default privileges grant everything on new tables to anon and authenticated; the
-- policies above already stop writes, and the grants say the same thing a second time.
REVOKE ALL ON TABLE public.asx_directory_snapshots FROM PUBLIC, anon, authenticated;
GRANT SELECT ON TABLE public.asx_directory_snapshots TO anon, authenticated;
GRANT SELECT, INSERT, UPDATE, DELETE ON TABLE public.asx_directory_snapshots TO service_role;

-- Adds the partitions (captured_on values) of p_rows that are not stored yet, whole; a partition
-- already stored is skipped whole, never merged into or replaced, so a retry adds nothing. The
-- lock is replace_window's: two appenders of one table queue, and the second one's NOT EXISTS
-- (a new snapshot per statement) sees what the first committed.
CREATE OR REPLACE FUNCTION public.append_asx_directory_snapshots(p_rows jsonb)
RETURNS integer
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = ''
AS $fn$
DECLARE
    v_added integer;
BEGIN
    PERFORM pg_catalog.pg_advisory_xact_lock(pg_catalog.hashtext('asx_pipeline.replace_window:asx_directory_snapshots'));
    INSERT INTO public.asx_directory_snapshots (captured_on, symbol, company_name, gics_industry_group, listing_date, market_cap, status, origin)
    SELECT r.captured_on, r.symbol, r.company_name, r.gics_industry_group, r.listing_date, r.market_cap, r.status, r.origin
    FROM pg_catalog.jsonb_populate_recordset(NULL::public.asx_directory_snapshots, p_rows) AS r
    WHERE NOT EXISTS (SELECT 1 FROM public.asx_directory_snapshots AS s WHERE s.captured_on = r.captured_on);
    GET DIAGNOSTICS v_added = ROW_COUNT;
    RETURN v_added;
END
$fn$;
REVOKE ALL ON FUNCTION public.append_asx_directory_snapshots(jsonb) FROM PUBLIC, anon, authenticated;
GRANT EXECUTE ON FUNCTION public.append_asx_directory_snapshots(jsonb) TO service_role;

-- The stored captured_on values, ascending. One array, not a set of rows: PostgREST caps a set
-- at max-rows (1,000 on Supabase) but returns a scalar whole. The recursive query is a loose
-- index scan of the primary key (which leads with captured_on): one probe per partition, not a
-- read of every row. Invoker's rights: whoever may read the table may list its partitions.
CREATE OR REPLACE FUNCTION public.asx_directory_snapshots_partition_values()
RETURNS date[]
LANGUAGE sql
STABLE
SET search_path = ''
AS $fn$
    WITH RECURSIVE stored (value) AS (
        SELECT pg_catalog.min(t.captured_on) FROM public.asx_directory_snapshots AS t
        UNION ALL
        SELECT (SELECT pg_catalog.min(t.captured_on) FROM public.asx_directory_snapshots AS t WHERE t.captured_on > stored.value)
        FROM stored WHERE stored.value IS NOT NULL
    )
    SELECT COALESCE(pg_catalog.array_agg(value ORDER BY value), '{}')
    FROM stored WHERE value IS NOT NULL
$fn$;
REVOKE ALL ON FUNCTION public.asx_directory_snapshots_partition_values() FROM PUBLIC, anon, authenticated;
GRANT EXECUTE ON FUNCTION public.asx_directory_snapshots_partition_values() TO anon, authenticated, service_role;

-- ------------------------------------------------------------------------------------------
-- asx_symbols: the directory snapshot each row was chosen from.

ALTER TABLE public.asx_symbols
    ADD COLUMN IF NOT EXISTS snapshot_captured_on date,
    ADD COLUMN IF NOT EXISTS snapshot_after_session boolean;
COMMENT ON TABLE public.asx_symbols IS 'The tracked universe of ASX companies on each session, from the latest directory snapshot captured on or before it.';

-- One request, one transaction: for a window that fits in one PostgREST request.
CREATE OR REPLACE FUNCTION public.replace_asx_symbols_window(p_start date, p_end date, p_rows jsonb)
RETURNS integer
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = ''
AS $fn$
DECLARE
    v_written integer;
BEGIN
    PERFORM asx_private.check_window('asx_symbols', p_start, p_end, p_rows);
    PERFORM pg_catalog.pg_advisory_xact_lock(pg_catalog.hashtext('asx_pipeline.replace_window:asx_symbols'));
    DELETE FROM public.asx_symbols WHERE as_of_date >= p_start AND as_of_date < p_end;
    INSERT INTO public.asx_symbols (as_of_date, symbol, yahoo_ticker, company_name, gics_industry_group, listing_date, market_cap, status, snapshot_captured_on, snapshot_after_session)
    SELECT r.as_of_date, r.symbol, r.yahoo_ticker, r.company_name, r.gics_industry_group, r.listing_date, r.market_cap, r.status, r.snapshot_captured_on, r.snapshot_after_session
    FROM pg_catalog.jsonb_populate_recordset(NULL::public.asx_symbols, p_rows) AS r
    WHERE r.as_of_date >= p_start AND r.as_of_date < p_end;
    GET DIAGNOSTICS v_written = ROW_COUNT;
    IF v_written <> pg_catalog.jsonb_array_length(p_rows) THEN
        RAISE EXCEPTION 'asx_symbols [%, %): % row(s) fall outside the window; nothing was written', p_start, p_end, pg_catalog.jsonb_array_length(p_rows) - v_written
            USING ERRCODE = '22023';
    END IF;
    RETURN v_written;
END
$fn$;
REVOKE ALL ON FUNCTION public.replace_asx_symbols_window(date, date, jsonb) FROM PUBLIC, anon, authenticated;
GRANT EXECUTE ON FUNCTION public.replace_asx_symbols_window(date, date, jsonb) TO service_role;

-- A window staged in batches (stage_window_batch) becomes visible here, all at once.
CREATE OR REPLACE FUNCTION public.commit_asx_symbols_window(p_upload_id uuid, p_start date, p_end date, p_batches integer)
RETURNS integer
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = ''
AS $fn$
DECLARE
    v_written integer;
    v_staged integer;
BEGIN
    v_staged := asx_private.claim_upload(p_upload_id, 'asx_symbols', p_start, p_end, p_batches);
    IF v_staged IS NULL THEN
        -- Already committed: this is a retry whose first answer was lost. Report, change nothing.
        RETURN (SELECT u.row_count FROM asx_private.window_uploads AS u
                WHERE u.upload_id = p_upload_id);
    END IF;
    PERFORM pg_catalog.pg_advisory_xact_lock(pg_catalog.hashtext('asx_pipeline.replace_window:asx_symbols'));
    DELETE FROM public.asx_symbols WHERE as_of_date >= p_start AND as_of_date < p_end;
    INSERT INTO public.asx_symbols (as_of_date, symbol, yahoo_ticker, company_name, gics_industry_group, listing_date, market_cap, status, snapshot_captured_on, snapshot_after_session)
    SELECT r.as_of_date, r.symbol, r.yahoo_ticker, r.company_name, r.gics_industry_group, r.listing_date, r.market_cap, r.status, r.snapshot_captured_on, r.snapshot_after_session
    FROM asx_private.window_upload_batches AS b
    CROSS JOIN LATERAL pg_catalog.jsonb_populate_recordset(NULL::public.asx_symbols, b.rows) AS r
    WHERE b.upload_id = p_upload_id AND r.as_of_date >= p_start AND r.as_of_date < p_end;
    GET DIAGNOSTICS v_written = ROW_COUNT;
    IF v_written <> v_staged THEN
        RAISE EXCEPTION 'asx_symbols [%, %): % row(s) fall outside the window; nothing was written', p_start, p_end, v_staged - v_written
            USING ERRCODE = '22023';
    END IF;
    PERFORM asx_private.finish_upload(p_upload_id, v_written);
    RETURN v_written;
END
$fn$;
REVOKE ALL ON FUNCTION public.commit_asx_symbols_window(uuid, date, date, integer) FROM PUBLIC, anon, authenticated;
GRANT EXECUTE ON FUNCTION public.commit_asx_symbols_window(uuid, date, date, integer) TO service_role;
