-- Upserts whose DO UPDATE changes a unique column: the primary key (moved to a fresh id) and
-- a second unique column.
CREATE TABLE accounts (id int PRIMARY KEY, email text NOT NULL UNIQUE, n int NOT NULL DEFAULT 0);
INSERT INTO accounts SELECT i, 'e' || i, 0 FROM generate_series(1, 500) i;
