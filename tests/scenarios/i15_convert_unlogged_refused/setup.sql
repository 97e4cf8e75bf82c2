-- Issue 15: PostgreSQL has no unlogged partitioned tables: converting an UNLOGGED table is
-- refused before anything is created, saying how to go on.
CREATE UNLOGGED TABLE event (id int, created_on date NOT NULL, PRIMARY KEY (id, created_on));
INSERT INTO event SELECT i, date '2026-01-01' + (i % 90) FROM generate_series(1, 1000) i;
