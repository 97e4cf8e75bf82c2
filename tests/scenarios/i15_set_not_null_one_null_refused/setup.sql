-- Neighbour of the NULL partition key: a plain table, a type change that needs the copy and a
-- SET NOT NULL on a column where one row of 40,000 is NULL. PostgreSQL's ALTER fails on that row;
-- the run is refused before anything is created, naming the column and the row's key, instead
-- of failing the copy halfway. The renamed spelling is checked too (the message names the
-- column as the table has it).
CREATE TABLE account (id int PRIMARY KEY, email text, score int);
INSERT INTO account SELECT i, 'u' || i || '@example.org', i % 100 FROM generate_series(1, 40000) i;
UPDATE account SET email = NULL WHERE id = 39001;
