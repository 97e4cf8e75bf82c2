-- Used by state::ensure_schema: the tool's own tables. The schema placeholder (the word schema
-- between two at signs) is replaced by the quoted state schema name (the only substitution). It
-- must never appear in a comment: a quoted name may hold a newline, which would end the comment
-- and turn the rest of the name into a statement (acl.rs tests this). Idempotent; runs under an
-- advisory lock so that concurrent first runs in one database do not race on CREATE ... IF NOT
-- EXISTS. It takes no lock on existing tables (no ALTER TABLE here), so a run starting while
-- another run of the same database is busy in the state tables does not wait for it. Until the
-- first release the tables are created whole; a later change of their shape needs a versioned
-- upgrade step, not an ALTER on every run.
-- Whether the schema is new: with the search path set to it alone, current_schema() names it,
-- or is NULL while it does not exist (this keeps the name out of string literals). SET LOCAL
-- ends with the caller's transaction; every name below is qualified.
SET LOCAL search_path = @schema@;
SELECT pg_catalog.set_config('pg_hotswap.new_state_schema',
                             (pg_catalog.current_schema() IS NULL)::text, true);
CREATE SCHEMA IF NOT EXISTS @schema@;
REVOKE ALL ON SCHEMA @schema@ FROM PUBLIC;

-- One row per run. `plan` holds everything a later process needs to continue the run (shadow
-- name, mapping, index definitions...); `control` is written by `pause`/`resume`/`cutover`/
-- `abort` from any client and polled by the running process.
CREATE TABLE IF NOT EXISTS @schema@.runs (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    table_oid     oid NOT NULL,
    table_name    text NOT NULL,
    alter_text    text,
    args          jsonb NOT NULL,
    plan          jsonb,
    phase         text NOT NULL DEFAULT 'preflight',
    status        text NOT NULL DEFAULT 'running',
    pid           int DEFAULT pg_backend_pid(),
    started_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now(),
    finished_at   timestamptz,
    lock_attempts int NOT NULL DEFAULT 0,
    max_lock_ms   float8,
    old_name      text,
    error         text,
    -- The operator's request to the running process (issue 7).
    control       text CHECK (control IN ('pause', 'cutover', 'abort')),
    -- What holds the run now (pause, start time, window, throttle, cut-over), since when, and
    -- until when it is expected to; the replication lag last measured (seconds).
    throttle       text,
    throttle_since timestamptz,
    waiting_until  timestamptz,
    lag_s          float8,
    -- For revert (issue 5): the names the swap chose (old table, its indexes), and the state of
    -- the reverse capture that keeps the old table revertible (active, reverted, finished).
    swap           jsonb,
    reverse        text,
    -- The fleet run this run belongs to (issue 18: `pg-hotswap fleet run` passes it to the run
    -- of every target), NULL for a run of its own.
    fleet_id       text,
    -- The cut-over mode the run was last started with (auto, manual): a continued run keeps it
    -- unless --cutover is given again (a run stopped while waiting for a manual cut-over must
    -- not swap by itself when it is resumed).
    cutover        text
);

-- Upgrade of a state schema made by an earlier version: the columns added since (fleet_id,
-- issue 18; cutover), each added once (the catalog is read first, so an up-to-date schema takes
-- no lock on runs here).
DO $hotswap_upgrade$
DECLARE
  runs regclass := pg_catalog.to_regclass(pg_catalog.quote_ident(pg_catalog.current_schema()) || '.runs');
BEGIN
  IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_attribute
                  WHERE attrelid = runs AND attname = 'fleet_id' AND NOT attisdropped) THEN
    ALTER TABLE @schema@.runs ADD COLUMN fleet_id text;
  END IF;
  IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_attribute
                  WHERE attrelid = runs AND attname = 'cutover' AND NOT attisdropped) THEN
    ALTER TABLE @schema@.runs ADD COLUMN cutover text;
  END IF;
END
$hotswap_upgrade$;

-- One row per chunk of the copy. done_at is set in the same transaction that commits the
-- chunk's rows into the shadow, so a chunk is never copied twice.
CREATE TABLE IF NOT EXISTS @schema@.chunks (
    run_id      bigint NOT NULL REFERENCES @schema@.runs (id) ON DELETE CASCADE,
    chunk_no    int NOT NULL,
    predicate   text NOT NULL,
    rows        bigint,
    bytes       bigint,
    duration_ms float8,
    done_at     timestamptz,
    -- For --chunk-time (issue 4): the chunk's range as its two ends (ARRAY[lower, upper], NULL
    -- elements for open ends), so that consecutive chunks are copied as one range (NULL: copied
    -- on its own). `unit` is the first chunk of the transaction that copied this one: that
    -- first chunk holds the unit's rows, bytes and duration_ms, the others have them NULL.
    bounds      text[],
    unit        int,
    PRIMARY KEY (run_id, chunk_no)
);

-- Phase changes, retries, warnings and errors, with detail.
CREATE TABLE IF NOT EXISTS @schema@.events (
    id      bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    run_id  bigint NOT NULL REFERENCES @schema@.runs (id) ON DELETE CASCADE,
    at      timestamptz NOT NULL DEFAULT clock_timestamp(),
    phase   text NOT NULL,
    kind    text NOT NULL,
    message text NOT NULL,
    detail  jsonb
);

-- Every object a run creates, recorded in the same transaction that creates it, so `abort`
-- can always remove exactly what the tool made and nothing else.
CREATE TABLE IF NOT EXISTS @schema@.objects (
    run_id      bigint NOT NULL REFERENCES @schema@.runs (id) ON DELETE CASCADE,
    kind        text NOT NULL,
    schema_name text NOT NULL,
    name        text NOT NULL,
    on_table    oid,
    created_at  timestamptz NOT NULL DEFAULT now(),
    dropped_at  timestamptz,
    PRIMARY KEY (run_id, kind, schema_name, name)
);

-- A new state schema and its tables belong to their owner alone: default privileges
-- (ALTER DEFAULT PRIVILEGES ... GRANT ... ON TABLES/SEQUENCES/SCHEMAS TO some_role) may have granted
-- them to other roles just now; revoke that (see acl.rs). Grants an administrator makes later,
-- to a monitoring role say, are left alone: this runs only when the schema was created.
DO $hotswap_state$
DECLARE
  obj record;
BEGIN
  IF pg_catalog.current_setting('pg_hotswap.new_state_schema') <> 'true' THEN
    RETURN;
  END IF;
  FOR obj IN
    SELECT 'SCHEMA' AS kind, pg_catalog.quote_ident(n.nspname) AS name,
           pg_catalog.string_agg(DISTINCT CASE WHEN a.grantee = 0 THEN 'PUBLIC'
                                 ELSE pg_catalog.quote_ident(pg_catalog.pg_get_userbyid(a.grantee)) END, ', ') AS grantees
      FROM pg_catalog.pg_namespace n, pg_catalog.aclexplode(n.nspacl) a
     WHERE n.nspname = pg_catalog.current_schema() AND a.grantee <> n.nspowner
     GROUP BY n.nspname
    UNION ALL
    SELECT CASE c.relkind WHEN 'S' THEN 'SEQUENCE' ELSE 'TABLE' END,
           pg_catalog.quote_ident(n.nspname) || '.' || pg_catalog.quote_ident(c.relname),
           pg_catalog.string_agg(DISTINCT CASE WHEN a.grantee = 0 THEN 'PUBLIC'
                                 ELSE pg_catalog.quote_ident(pg_catalog.pg_get_userbyid(a.grantee)) END, ', ')
      FROM pg_catalog.pg_class c
      JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace,
           pg_catalog.aclexplode(c.relacl) a
     WHERE n.nspname = pg_catalog.current_schema() AND a.grantee <> c.relowner
     GROUP BY c.relkind, n.nspname, c.relname
  LOOP
    EXECUTE pg_catalog.format('REVOKE ALL ON %s %s FROM %s', obj.kind, obj.name, obj.grantees);
  END LOOP;
END
$hotswap_state$;
