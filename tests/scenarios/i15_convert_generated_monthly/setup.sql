-- Issue 15: --partition-interval month generates the partitions over the span of the data
-- (2025-11 .. 2026-02, read through the index on created_at) and a DEFAULT one; writers move
-- rows between months, insert and delete, all inside the span (a write outside it before the
-- shadow is made would change the span the generator reads, and the partitions checked here).
CREATE TABLE reading (id int PRIMARY KEY, created_at timestamp NOT NULL, sensor int NOT NULL, value double precision);
CREATE INDEX reading_created_at_idx ON reading (created_at);
INSERT INTO reading SELECT i, timestamp '2025-11-03 10:00' + i * interval '37 minutes', i % 13, i / 7.0 FROM generate_series(1, 4000) i;
