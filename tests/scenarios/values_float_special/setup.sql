-- float8 and float4 with -0, NaN, +-Infinity, subnormals, shortest-exact digits; float4 ->
-- float8 (exact), float8 -> numeric.
CREATE TABLE v (id int PRIMARY KEY, d float8, r float4, dn float8, w int);
INSERT INTO v SELECT i, CASE i % 7 WHEN 0 THEN '-0' WHEN 1 THEN 'NaN' WHEN 2 THEN 'Infinity' WHEN 3 THEN '-Infinity' WHEN 4 THEN 4.9e-324 * i ELSE 0.1 * i END,
  CASE i % 3 WHEN 0 THEN '-0'::float4 WHEN 1 THEN 'NaN' ELSE (0.1 * i)::float4 END, i / 3.0, i FROM generate_series(1, 600) i;
