-- numeric with NaN, +-Infinity (PostgreSQL 14+), trailing zeros (display scale), very small
-- and very large values; numeric -> numeric(30,5) (rounds), numeric -> float8.
CREATE TABLE v (id int PRIMARY KEY, n numeric, nr numeric, nf numeric, w int);
INSERT INTO v SELECT i, CASE i % 6 WHEN 0 THEN 'NaN' WHEN 1 THEN 'Infinity' WHEN 2 THEN '-Infinity' WHEN 3 THEN 1.2300 * i WHEN 4 THEN 1e-300 * i ELSE 1e300 * i END,
  i / 7.0, i / 3.0, i FROM generate_series(1, 600) i;
INSERT INTO v VALUES (0, -0.000, NULL, 'NaN', 0);
