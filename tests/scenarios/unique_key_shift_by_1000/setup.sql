-- Primary key changes: rows move to id + 1000 and back, one by one and five at a time.
CREATE TABLE t (id int PRIMARY KEY, v int);
INSERT INTO t SELECT i, i FROM generate_series(1, 500) i;
