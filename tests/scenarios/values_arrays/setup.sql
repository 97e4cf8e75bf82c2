-- Arrays: int[] (with NULLs, empty, non-default lower bounds, two dimensions) -> bigint[], text[].
CREATE TABLE v (id int PRIMARY KEY, a int[], t text[], w int);
INSERT INTO v SELECT i, CASE i % 5 WHEN 0 THEN '{}' WHEN 1 THEN ARRAY[i, NULL, -i] WHEN 2 THEN '[0:1]={1,2}' WHEN 3 THEN ARRAY[[i, 1], [2, 3]] ELSE NULL END,
  ARRAY['a b', NULL, 'q"uote', E'back\\slash', i::text], i FROM generate_series(1, 600) i;
