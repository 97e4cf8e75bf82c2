-- issue 13 input 4: a deferrable unique key shifted by one statement during the run.
CREATE TABLE li (id int PRIMARY KEY, pos int, UNIQUE (pos) DEFERRABLE);
INSERT INTO li SELECT i, i FROM generate_series(1, 300) i;
