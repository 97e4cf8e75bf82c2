-- tsvector and tsquery with weights, positions and quoting.
CREATE TABLE v (id int PRIMARY KEY, tv tsvector, q tsquery, body text, w int);
INSERT INTO v SELECT i, to_tsvector('english', 'The quick brown fox ' || i || ' jumps'), ('fox & !dog <-> cat' || i || ':*')::tsquery,
  'body ' || i, i FROM generate_series(1, 600) i;
INSERT INTO v VALUES (0, 'a:1A b:2,3B ''c d'':4', 'a:AB', NULL, 0), (-1, '', NULL, NULL, 0);
