-- issue 13 input 3: a unique value moves to another row during the copy (delete and
-- reinsert under a new id). The serial's default is not used: the ledger would draw other ids.
CREATE TABLE t (id serial PRIMARY KEY, tok text NOT NULL UNIQUE);
INSERT INTO t (id, tok) SELECT i, 't' || i FROM generate_series(1, 400) i;
