-- issue 13 input 5: the application deletes parents the ordinary way (children first) while
-- the child table is rewritten, and adds new parents with children.
CREATE TABLE parent (id int PRIMARY KEY, name text);
CREATE TABLE child (id int PRIMARY KEY, parent_id int NOT NULL REFERENCES parent, v int);
INSERT INTO parent SELECT i, 'p' || i FROM generate_series(1, 100) i;
INSERT INTO child SELECT i, 1 + i % 100, i FROM generate_series(1, 1000) i;
