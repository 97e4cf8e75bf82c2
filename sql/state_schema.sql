-- Used by state::ensure_schema: the tool's own tables. `@schema@` is replaced by the quoted
-- state schema name (the only substitution). Idempotent; runs under an advisory lock so that
-- concurrent first runs in one database do not race on CREATE ... IF NOT EXISTS.
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
    control       text
);

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

-- Added for revert (issue 5): the names the swap chose (old table, its indexes), and the state of
-- the reverse capture that keeps the old table revertible (active, reverted, finished).
ALTER TABLE @schema@.runs ADD COLUMN IF NOT EXISTS swap jsonb;
ALTER TABLE @schema@.runs ADD COLUMN IF NOT EXISTS reverse text;

-- Added for --chunk-time (issue 4): a chunk's range as its two ends (ARRAY[lower, upper], NULL
-- elements for open ends), so that consecutive chunks are copied as one range; NULL for chunks
-- recorded by an earlier version (each is copied on its own). `unit` is the first chunk of the
-- transaction that copied the chunk: that first chunk holds the unit's rows, bytes and
-- duration_ms, and the others of the unit have them NULL.
ALTER TABLE @schema@.chunks ADD COLUMN IF NOT EXISTS bounds text[];
ALTER TABLE @schema@.chunks ADD COLUMN IF NOT EXISTS unit int;
