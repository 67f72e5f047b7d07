-- 0001_core_tables: the first three warehouse tables, row-level security, and the functions the
-- REST backend writes through.
--
-- Runs on Supabase and on plain Postgres (tests, home labs). Applied by `asx-pipeline db migrate`,
-- which records it in asx_private.schema_migrations; do not edit it once applied anywhere, add a
-- new NNNN_*.sql instead. The per-table blocks below were produced by
-- `python -m asx_pipeline.warehouse.migrations render <table>` and are checked against
-- asx_pipeline/warehouse/tables.py by asx_pipeline_tests/warehouse/test_migrations.py.
--
-- Writing a window over REST atomically
-- -------------------------------------
-- PostgREST runs each request in its own transaction, and a large window does not fit in one
-- request. Deleting the window on the first batch and appending on the next ones would NOT be
-- atomic: a crash between batches leaves half a window, and readers see it half-written meanwhile.
-- So a window is written in one of two ways:
--   * fits in one request: `replace_<table>_window(p_start, p_end, p_rows)` deletes the window and
--     inserts the rows in that request's single transaction;
--   * several requests: each batch goes to `stage_window_batch(p_upload_id, p_table, p_start,
--     p_end, p_batch, p_rows)`, which stores it, invisible to readers, in asx_private (re-sending
--     a batch replaces it, so retries are safe); then `commit_<table>_window(p_upload_id, p_start,
--     p_end, p_batches)` checks every batch arrived and, in one transaction, deletes the window,
--     inserts every staged row and forgets the staging. Committing an upload twice is a no-op that
--     returns the first answer, so a commit whose response was lost can be retried. An upload
--     abandoned by a crashed client is never committed: the window keeps its old rows, and its
--     staged batches are deleted a day later by the next commit.
-- Every writer of a table (these functions and the direct Postgres backend) takes the same
-- transaction-scoped advisory lock, so two writers of one table queue instead of colliding.
--
-- Functions are SECURITY DEFINER with an empty search_path (every name is schema-qualified), and
-- executable by service_role only: anon and authenticated can read the tables and nothing else.

-- Supabase has these roles; plain Postgres does not. Guarded, because several databases of one
-- cluster may run this at the same time and roles are cluster-wide.
DO $roles$
DECLARE
    role_name text;
BEGIN
    FOREACH role_name IN ARRAY ARRAY['anon', 'authenticated', 'service_role'] LOOP
        IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = role_name) THEN
            BEGIN
                EXECUTE format('CREATE ROLE %I NOLOGIN NOINHERIT', role_name);
            EXCEPTION WHEN duplicate_object OR unique_violation THEN
                NULL;  -- created meanwhile by a concurrent migration of another database
            END;
        END IF;
    END LOOP;
END
$roles$;

GRANT USAGE ON SCHEMA public TO anon, authenticated, service_role;

-- Staging for multi-request window writes; not in an exposed schema, so PostgREST cannot reach it.
CREATE SCHEMA IF NOT EXISTS asx_private;
REVOKE ALL ON SCHEMA asx_private FROM PUBLIC;

CREATE TABLE IF NOT EXISTS asx_private.window_uploads (
    upload_id uuid PRIMARY KEY,
    table_name text NOT NULL,
    window_start date NOT NULL,
    window_end date NOT NULL,
    created_at timestamp with time zone NOT NULL DEFAULT now(),
    committed_at timestamp with time zone,
    row_count integer
);

CREATE TABLE IF NOT EXISTS asx_private.window_upload_batches (
    upload_id uuid NOT NULL REFERENCES asx_private.window_uploads ON DELETE CASCADE,
    batch_no integer NOT NULL CHECK (batch_no >= 0),
    rows jsonb NOT NULL,
    staged_at timestamp with time zone NOT NULL DEFAULT now(),
    PRIMARY KEY (upload_id, batch_no)
);

-- Refuses malformed calls before anything is touched.
CREATE OR REPLACE FUNCTION asx_private.check_window(
    p_table text, p_start date, p_end date, p_rows jsonb
)
RETURNS void
LANGUAGE plpgsql
SET search_path = ''
AS $fn$
BEGIN
    IF p_start IS NULL OR p_end IS NULL OR p_end <= p_start THEN
        RAISE EXCEPTION '%: window [%, %) is empty or incomplete', p_table, p_start, p_end
            USING ERRCODE = '22023';
    END IF;
    IF p_rows IS NULL OR pg_catalog.jsonb_typeof(p_rows) <> 'array' THEN
        RAISE EXCEPTION '% [%, %): p_rows must be a JSON array of row objects', p_table, p_start,
            p_end USING ERRCODE = '22023';
    END IF;
END
$fn$;

-- Stores one batch of an upload; idempotent per (upload, batch) so a retried request is harmless.
CREATE OR REPLACE FUNCTION public.stage_window_batch(
    p_upload_id uuid, p_table text, p_start date, p_end date, p_batch integer, p_rows jsonb
)
RETURNS integer
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = ''
AS $fn$
DECLARE
    v_upload asx_private.window_uploads;
BEGIN
    PERFORM asx_private.check_window(p_table, p_start, p_end, p_rows);
    IF pg_catalog.to_regprocedure(pg_catalog.format(
        'public.%I(uuid, date, date, integer)', 'commit_' || p_table || '_window')) IS NULL THEN
        RAISE EXCEPTION 'no warehouse table % takes staged windows', p_table
            USING ERRCODE = '42P01';
    END IF;
    INSERT INTO asx_private.window_uploads (upload_id, table_name, window_start, window_end)
    VALUES (p_upload_id, p_table, p_start, p_end)
    ON CONFLICT (upload_id) DO NOTHING;
    SELECT * INTO v_upload FROM asx_private.window_uploads WHERE upload_id = p_upload_id
        FOR SHARE;
    IF v_upload.table_name <> p_table OR v_upload.window_start <> p_start
            OR v_upload.window_end <> p_end THEN
        RAISE EXCEPTION 'upload % belongs to % [%, %)', p_upload_id, v_upload.table_name,
            v_upload.window_start, v_upload.window_end USING ERRCODE = '22023';
    END IF;
    IF v_upload.committed_at IS NOT NULL THEN
        RAISE EXCEPTION 'upload % was already committed; start a new upload', p_upload_id
            USING ERRCODE = '22023';
    END IF;
    INSERT INTO asx_private.window_upload_batches (upload_id, batch_no, rows)
    VALUES (p_upload_id, p_batch, p_rows)
    ON CONFLICT (upload_id, batch_no) DO UPDATE SET rows = EXCLUDED.rows, staged_at = now();
    RETURN pg_catalog.jsonb_array_length(p_rows);
END
$fn$;
REVOKE ALL ON FUNCTION public.stage_window_batch(uuid, text, date, date, integer, jsonb)
    FROM PUBLIC, anon, authenticated;
GRANT EXECUTE ON FUNCTION public.stage_window_batch(uuid, text, date, date, integer, jsonb)
    TO service_role;

-- Locks an upload for its commit. Returns the number of staged rows, or NULL when the upload was
-- committed already (a retried commit). Refuses an upload with missing batches.
CREATE OR REPLACE FUNCTION asx_private.claim_upload(
    p_upload_id uuid, p_table text, p_start date, p_end date, p_batches integer
)
RETURNS integer
LANGUAGE plpgsql
SET search_path = ''
AS $fn$
DECLARE
    v_upload asx_private.window_uploads;
    v_batches integer;
    v_last integer;
    v_rows integer;
BEGIN
    SELECT * INTO v_upload FROM asx_private.window_uploads WHERE upload_id = p_upload_id
        FOR UPDATE;
    IF NOT FOUND THEN
        IF p_batches = 0 THEN
            RAISE EXCEPTION 'an upload has at least one batch; use replace_%_window for none',
                p_table USING ERRCODE = '22023';
        END IF;
        RAISE EXCEPTION '% [%, %): upload % is unknown (never staged, or cleaned up)', p_table,
            p_start, p_end, p_upload_id USING ERRCODE = '22023';
    END IF;
    IF v_upload.table_name <> p_table OR v_upload.window_start <> p_start
            OR v_upload.window_end <> p_end THEN
        RAISE EXCEPTION 'upload % belongs to % [%, %)', p_upload_id, v_upload.table_name,
            v_upload.window_start, v_upload.window_end USING ERRCODE = '22023';
    END IF;
    IF v_upload.committed_at IS NOT NULL THEN
        RETURN NULL;
    END IF;
    SELECT count(*), max(batch_no), coalesce(sum(pg_catalog.jsonb_array_length(rows)), 0)
        INTO v_batches, v_last, v_rows
        FROM asx_private.window_upload_batches WHERE upload_id = p_upload_id;
    IF v_batches <> p_batches OR v_last IS DISTINCT FROM p_batches - 1 THEN
        RAISE EXCEPTION '% [%, %): upload % has % of % batches staged; nothing was written',
            p_table, p_start, p_end, p_upload_id, v_batches, p_batches USING ERRCODE = '22023';
    END IF;
    RETURN v_rows;
END
$fn$;

-- Marks an upload committed, drops its staged rows, and sweeps uploads abandoned by crashed
-- clients (uncommitted after a day; committed ones are remembered for a week to answer retries).
CREATE OR REPLACE FUNCTION asx_private.finish_upload(p_upload_id uuid, p_written integer)
RETURNS void
LANGUAGE plpgsql
SET search_path = ''
AS $fn$
BEGIN
    UPDATE asx_private.window_uploads
        SET committed_at = now(), row_count = p_written
        WHERE upload_id = p_upload_id;
    DELETE FROM asx_private.window_upload_batches WHERE upload_id = p_upload_id;
    DELETE FROM asx_private.window_uploads
        WHERE (committed_at IS NULL AND created_at < now() - interval '1 day')
           OR committed_at < now() - interval '7 days';
END
$fn$;

REVOKE ALL ON ALL TABLES IN SCHEMA asx_private FROM PUBLIC;
REVOKE ALL ON FUNCTION asx_private.check_window(text, date, date, jsonb) FROM PUBLIC;
REVOKE ALL ON FUNCTION asx_private.claim_upload(uuid, text, date, date, integer) FROM PUBLIC;
REVOKE ALL ON FUNCTION asx_private.finish_upload(uuid, integer) FROM PUBLIC;

-- ------------------------------------------------------------------------------------------
-- asx_symbols: The tracked universe of ASX companies as known on each session.

CREATE TABLE IF NOT EXISTS public.asx_symbols (
    as_of_date date NOT NULL,
    symbol text NOT NULL,
    yahoo_ticker text NOT NULL,
    company_name text,
    gics_industry_group text,
    listing_date date,
    market_cap double precision,
    status text NOT NULL,
    CONSTRAINT asx_symbols_pkey PRIMARY KEY (as_of_date, symbol)
);
COMMENT ON TABLE public.asx_symbols IS 'The tracked universe of ASX companies as known on each session.';
-- Reads by symbol (one company's history); the primary key, which leads with as_of_date,
-- serves reads by date.
CREATE INDEX IF NOT EXISTS asx_symbols_symbol_idx ON public.asx_symbols (symbol, as_of_date);

ALTER TABLE public.asx_symbols ENABLE ROW LEVEL SECURITY;
DROP POLICY IF EXISTS asx_symbols_read ON public.asx_symbols;
CREATE POLICY asx_symbols_read ON public.asx_symbols FOR SELECT TO anon, authenticated USING (true);
DROP POLICY IF EXISTS asx_symbols_service ON public.asx_symbols;
CREATE POLICY asx_symbols_service ON public.asx_symbols FOR ALL TO service_role USING (true) WITH CHECK (true);
-- Supabase's default privileges grant everything on new tables to anon and authenticated; the
-- policies above already stop writes, and the grants say the same thing a second time.
REVOKE ALL ON TABLE public.asx_symbols FROM PUBLIC, anon, authenticated;
GRANT SELECT ON TABLE public.asx_symbols TO anon, authenticated;
GRANT SELECT, INSERT, UPDATE, DELETE ON TABLE public.asx_symbols TO service_role;

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
    INSERT INTO public.asx_symbols (as_of_date, symbol, yahoo_ticker, company_name, gics_industry_group, listing_date, market_cap, status)
    SELECT r.as_of_date, r.symbol, r.yahoo_ticker, r.company_name, r.gics_industry_group, r.listing_date, r.market_cap, r.status
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
    INSERT INTO public.asx_symbols (as_of_date, symbol, yahoo_ticker, company_name, gics_industry_group, listing_date, market_cap, status)
    SELECT r.as_of_date, r.symbol, r.yahoo_ticker, r.company_name, r.gics_industry_group, r.listing_date, r.market_cap, r.status
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

-- ------------------------------------------------------------------------------------------
-- daily_prices: End-of-day bars, raw (as traded) plus adj_close.

CREATE TABLE IF NOT EXISTS public.daily_prices (
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
);
COMMENT ON TABLE public.daily_prices IS 'End-of-day bars, raw (as traded) plus adj_close.';
-- Reads by symbol (one company's history); the primary key, which leads with trade_date,
-- serves reads by date.
CREATE INDEX IF NOT EXISTS daily_prices_symbol_idx ON public.daily_prices (symbol, trade_date);

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
    DELETE FROM public.daily_prices WHERE trade_date >= p_start AND trade_date < p_end;
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
    DELETE FROM public.daily_prices WHERE trade_date >= p_start AND trade_date < p_end;
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

CREATE TABLE IF NOT EXISTS public.corporate_actions (
    ex_date date NOT NULL,
    symbol text NOT NULL,
    action text NOT NULL,
    value double precision NOT NULL,
    source text NOT NULL,
    CONSTRAINT corporate_actions_pkey PRIMARY KEY (ex_date, symbol, action)
);
COMMENT ON TABLE public.corporate_actions IS 'Dividends (cash per share) and splits (ratio new/old) by ex-date.';
-- Reads by symbol (one company's history); the primary key, which leads with ex_date,
-- serves reads by date.
CREATE INDEX IF NOT EXISTS corporate_actions_symbol_idx ON public.corporate_actions (symbol, ex_date);

ALTER TABLE public.corporate_actions ENABLE ROW LEVEL SECURITY;
DROP POLICY IF EXISTS corporate_actions_read ON public.corporate_actions;
CREATE POLICY corporate_actions_read ON public.corporate_actions FOR SELECT TO anon, authenticated USING (true);
DROP POLICY IF EXISTS corporate_actions_service ON public.corporate_actions;
CREATE POLICY corporate_actions_service ON public.corporate_actions FOR ALL TO service_role USING (true) WITH CHECK (true);
-- Supabase's default privileges grant everything on new tables to anon and authenticated; the
-- policies above already stop writes, and the grants say the same thing a second time.
REVOKE ALL ON TABLE public.corporate_actions FROM PUBLIC, anon, authenticated;
GRANT SELECT ON TABLE public.corporate_actions TO anon, authenticated;
GRANT SELECT, INSERT, UPDATE, DELETE ON TABLE public.corporate_actions TO service_role;

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
    DELETE FROM public.corporate_actions WHERE ex_date >= p_start AND ex_date < p_end;
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
    DELETE FROM public.corporate_actions WHERE ex_date >= p_start AND ex_date < p_end;
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
