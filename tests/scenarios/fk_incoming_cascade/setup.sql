-- The referenced table is rewritten; its children reference it ON DELETE CASCADE. Deleting a
-- parent removes its children through the (re-pointed) foreign key.
CREATE TABLE author (id int PRIMARY KEY, name varchar(40) NOT NULL);
CREATE TABLE book (id int PRIMARY KEY, author_id int NOT NULL REFERENCES author ON DELETE CASCADE, title text);
INSERT INTO author SELECT i, 'a' || i FROM generate_series(1, 500) i;
INSERT INTO book SELECT i, 1 + i % 500, 'b' || i FROM generate_series(1, 2000) i;
