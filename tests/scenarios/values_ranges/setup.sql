-- Ranges: empty, unbounded, inclusive/exclusive, numeric and timestamptz bounds, while
-- another column retyped.
CREATE TABLE v (id int PRIMARY KEY, r int4range, n numrange, tr tstzrange, w int);
INSERT INTO v SELECT i, CASE i % 4 WHEN 0 THEN 'empty' WHEN 1 THEN int4range(i, NULL) WHEN 2 THEN int4range(NULL, i, '(]') ELSE int4range(i, i + 10) END,
  numrange(i / 3.0, i, '[]'), tstzrange('2020-01-01 00:00+00'::timestamptz + i * interval '1 day', 'infinity'), i FROM generate_series(1, 600) i;
