-- jsonb -> text (the canonical jsonb text), and jsonb -> text through ->> in a second column.
CREATE TABLE t (id int PRIMARY KEY, doc jsonb, attrs jsonb, note text);
INSERT INTO t SELECT i, jsonb_build_object('n', i, 'tags', jsonb_build_array('a', i, 1.50)),
  jsonb_build_object('name', 'x' || i), 'n' FROM generate_series(1, 600) i;
