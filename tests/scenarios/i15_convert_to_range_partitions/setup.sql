-- Issue 15: a plain table becomes range-partitioned by month with a default partition; the
-- primary key (id) is widened to (id, created_on) as PostgreSQL requires of a partitioned table,
-- and the secondary indexes are created on the partitioned table. Writers move rows between
-- partitions (created_on changes), delete, insert (some into the default partition).
CREATE TABLE event (id int PRIMARY KEY, created_on date NOT NULL, kind text NOT NULL, payload jsonb, CHECK (kind <> ''));
CREATE INDEX event_kind_idx ON event (kind);
CREATE INDEX event_created_idx ON event (created_on DESC);
ALTER TABLE event SET (fillfactor = 90);
COMMENT ON TABLE event IS 'events by month';
INSERT INTO event SELECT i, date '2026-01-01' + (i % 90), 'k' || (i % 4), jsonb_build_object('i', i) FROM generate_series(1, 3000) i;
