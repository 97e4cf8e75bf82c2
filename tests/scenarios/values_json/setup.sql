-- json keeps its text exactly (whitespace, duplicate keys, key order); jsonb is canonical.
CREATE TABLE v (id int PRIMARY KEY, j json, jb jsonb, w int);
INSERT INTO v SELECT i, ('{ "b" : ' || i || ',  "a":[1.10, "x\\u0041"], "b": null }')::json,
  ('{"k": ' || i || ', "n": 1.10e2, "s": "\\u00e9"}')::jsonb, i FROM generate_series(1, 600) i;
