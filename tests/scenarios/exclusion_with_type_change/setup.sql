-- The ALTER changes the type of a column an exclusion constraint uses (int4range -> int8range).
CREATE EXTENSION IF NOT EXISTS btree_gist;
CREATE TABLE lease (id int PRIMARY KEY, grp int NOT NULL, span int4range NOT NULL,
  EXCLUDE USING gist (grp WITH =, span WITH &&));
INSERT INTO lease SELECT i, i % 10, int4range((i / 10) * 100, (i / 10) * 100 + 50) FROM generate_series(1, 600) i;
