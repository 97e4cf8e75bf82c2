-- Issue 15: a range-partitioned table (three partitions, one of them partitioned by list in
-- turn, and a default) rewritten int -> bigint. Writers move rows between partitions (the
-- partition key changes), delete, and insert into every partition and the default. Afterwards it
-- is still partitioned the same way, each partition with its bound, storage options, owner,
-- comment and privileges, and the partitions' indexes carry their old names.
DO $$ BEGIN CREATE ROLE i15_reader; EXCEPTION WHEN duplicate_object THEN NULL; END $$;
CREATE TABLE measure (id int NOT NULL, day int NOT NULL, site text NOT NULL, v numeric, PRIMARY KEY (id, day, site)) PARTITION BY RANGE (day);
CREATE TABLE measure_q1 PARTITION OF measure FOR VALUES FROM (0) TO (90);
CREATE TABLE measure_q2 PARTITION OF measure FOR VALUES FROM (90) TO (180) PARTITION BY LIST (site);
CREATE TABLE measure_q2_north PARTITION OF measure_q2 FOR VALUES IN ('n');
CREATE TABLE measure_q2_rest PARTITION OF measure_q2 DEFAULT;
CREATE TABLE measure_q3 PARTITION OF measure FOR VALUES FROM (180) TO (270) WITH (fillfactor = 80);
CREATE TABLE measure_other PARTITION OF measure DEFAULT;
CREATE INDEX measure_site_idx ON measure (site, day);
COMMENT ON TABLE measure IS 'measurements';
COMMENT ON TABLE measure_q3 IS 'third quarter';
GRANT SELECT ON measure TO i15_reader;
GRANT SELECT ON measure_q1 TO i15_reader;
INSERT INTO measure SELECT i, i % 400, CASE WHEN i % 3 = 0 THEN 'n' ELSE 's' END, i / 7.0 FROM generate_series(1, 3000) i;
