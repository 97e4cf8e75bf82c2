-- Composite types, nested, with NULL fields; a composite column in an array.
CREATE TYPE addr AS (street text, no int);
CREATE TYPE person AS (name text, home addr, tags text[]);
CREATE TABLE v (id int PRIMARY KEY, p person, hist addr[], w int);
INSERT INTO v SELECT i, ROW('n' || i, ROW('s "' || i, i)::addr, ARRAY['t', NULL])::person,
  ARRAY[ROW('a', 1)::addr, ROW(NULL, NULL)::addr, NULL], i FROM generate_series(1, 600) i;
INSERT INTO v VALUES (0, NULL, NULL, NULL), (-1, ROW(NULL, NULL, NULL), '{}', 0);
