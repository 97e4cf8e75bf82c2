-- Issue 15: one partition of a range-partitioned table (with a default partition) rebuilt on
-- its own, without --alter (bloat removal), and attached back with the same bound. The writers
-- write through the partitioned table: they move rows into and out of the partition (the
-- partition key changes), update, delete and insert across the tree; the ledger mirrors the
-- whole tree and the oracle compares the partition with the ledger's rows inside its bound.
-- The parent's index is attached on every partition; the partition has its own index,
-- check constraint, storage options, comment and privileges.
DO $$ BEGIN CREATE ROLE i15_one_reader; EXCEPTION WHEN duplicate_object THEN NULL; END $$;
CREATE TABLE reading (id int NOT NULL, day int NOT NULL, v numeric, note text, PRIMARY KEY (id, day)) PARTITION BY RANGE (day);
CREATE TABLE reading_early PARTITION OF reading FOR VALUES FROM (0) TO (100);
CREATE TABLE reading_mid PARTITION OF reading FOR VALUES FROM (100) TO (250) WITH (fillfactor = 80);
CREATE TABLE reading_late PARTITION OF reading FOR VALUES FROM (250) TO (350);
CREATE TABLE reading_other PARTITION OF reading DEFAULT;
CREATE INDEX reading_v_idx ON reading (v);
CREATE INDEX reading_mid_note_idx ON reading_mid (note);
ALTER TABLE reading_mid ADD CONSTRAINT reading_mid_v_check CHECK (v > -1000000);
COMMENT ON TABLE reading_mid IS 'the middle';
GRANT SELECT ON reading_mid TO i15_one_reader;
INSERT INTO reading SELECT i, i % 400, i / 7.0, 'r' || i FROM generate_series(1, 3000) i;
