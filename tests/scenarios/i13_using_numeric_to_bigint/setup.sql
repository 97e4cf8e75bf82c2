-- issue 13 input 1: USING (amount * 100)::bigint; PostgreSQL gives 125 for 1.25.
CREATE TABLE t (id int PRIMARY KEY, amount numeric(12,2), note text);
INSERT INTO t SELECT i, i + 0.25, 'n' || i FROM generate_series(1, 600) i;
INSERT INTO t VALUES (0, NULL, 'null amount');
