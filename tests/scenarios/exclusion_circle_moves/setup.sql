-- Exclusion on geometry (no two circles overlap); circles grow and shrink in their cell and
-- move to new ids; a new column with a default is added.
CREATE TABLE disc (id int PRIMARY KEY, c circle NOT NULL, EXCLUDE USING gist (c WITH &&));
INSERT INTO disc SELECT i, circle(point(i % 30 * 10, i / 30 * 10), 1) FROM generate_series(1, 600) i;
