-- int -> text USING to_char (zero padded): the value written is not the cast's.
CREATE TABLE t (id int PRIMARY KEY, n int, note text);
INSERT INTO t SELECT i, i * 13, 'n' FROM generate_series(1, 600) i;
