-- issue 13 input 4: a deferrable unique key shifted by one statement during the run.
-- The two whole-table shifts take turns (pg_advisory_xact_lock in workload.sql): run at once,
-- two of them can deadlock on the deferred unique check at commit, on the ledger as on the
-- table, with or without the tool (seen once in session 6).
CREATE TABLE li (id int PRIMARY KEY, pos int, UNIQUE (pos) DEFERRABLE);
INSERT INTO li SELECT i, i FROM generate_series(1, 300) i;
