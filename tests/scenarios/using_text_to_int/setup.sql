-- text -> int with USING, over padded and signed digits.
CREATE TABLE t (id int PRIMARY KEY, qty text, note text);
INSERT INTO t SELECT i, CASE WHEN i % 3 = 0 THEN ' 0' || i ELSE (-i)::text END, 'n' FROM generate_series(1, 600) i;
