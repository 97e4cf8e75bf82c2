-- Multiranges (PostgreSQL 14+): several ranges, empty, unbounded.
CREATE TABLE v (id int PRIMARY KEY, m int4multirange, dm datemultirange, w int);
INSERT INTO v SELECT i, int4multirange(int4range(i, i + 2), int4range(i + 5, NULL)),
  CASE WHEN i % 3 = 0 THEN '{}' ELSE datemultirange(daterange('2020-01-01'::date + i, '2020-02-01'::date + i)) END, i FROM generate_series(1, 600) i;
