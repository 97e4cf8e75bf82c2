-- TOAST-sized values (100 kB text, compressible and not, and bytea) under writes.
CREATE TABLE v (id int PRIMARY KEY, big text, raw bytea, w int);
INSERT INTO v SELECT i, CASE WHEN i % 2 = 0 THEN repeat('x' || i, 100000 / (length(i::text) + 1)) ELSE
  (SELECT string_agg(md5(i::text || g::text), '') FROM generate_series(1, 3200) g) END,
  CASE WHEN i % 5 = 0 THEN decode(repeat('00ff', 60000), 'hex') END, i FROM generate_series(1, 300) i;
