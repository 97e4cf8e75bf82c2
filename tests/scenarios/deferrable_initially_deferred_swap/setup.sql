-- UNIQUE DEFERRABLE INITIALLY DEFERRED: positions swapped in one statement, and moved through
-- a duplicate that lasts until commit.
CREATE TABLE slot (id int PRIMARY KEY, pos int NOT NULL, UNIQUE (pos) DEFERRABLE INITIALLY DEFERRED);
INSERT INTO slot SELECT i, i * 10 FROM generate_series(1, 500) i;
