-- issue 21 input 1: char(n) keeps its length (padding), int -> char(10).
CREATE TABLE t (id int PRIMARY KEY, code varchar(8), n int);
INSERT INTO t SELECT i, 'C' || lpad(i::text, 6, '0'), i * 7 FROM generate_series(1, 600) i;
INSERT INTO t VALUES (0, NULL, NULL);
