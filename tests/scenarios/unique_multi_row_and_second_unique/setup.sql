-- Multi-row statements and a second unique column whose values move between rows.
CREATE TABLE items (id int PRIMARY KEY, code text NOT NULL UNIQUE, v int);
INSERT INTO items SELECT i, 'c' || i, i FROM generate_series(1, 800) i;
