-- issue 13 input 6: PostgreSQL refuses DROP COLUMN of a column a view uses at once.
CREATE TABLE person (id int PRIMARY KEY, full_name text, nickname text);
INSERT INTO person SELECT i, 'Person ' || i, 'p' || i FROM generate_series(1, 500) i;
CREATE VIEW person_badge AS SELECT id, full_name, nickname FROM person;
